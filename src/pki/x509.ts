// @peculiar/x509 resolves its services through tsyringe, which needs the reflect-metadata
// polyfill loaded first. Import X.509 parsing only through this module.
import 'reflect-metadata';

export * from '@peculiar/x509';
