#!/usr/bin/env node
// Runs the compiled command line (dist/, built by `npm install` through `prepare`, or `npm run build`).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
