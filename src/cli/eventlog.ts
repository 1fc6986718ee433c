import type { Command } from 'commander';
import type { CliContext } from './main.js';

/** Placeholder: the `coffer eventlog` command group is being built (issue 3). */
export function registerEventlog(_program: Command, _ctx: CliContext): void {}
