import type { Command } from 'commander';
import type { CliContext } from './main.js';

/** Placeholder: the `coffer tpm` command group is being built (issue 3). */
export function registerTpm(_program: Command, _ctx: CliContext): void {}
