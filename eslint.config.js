// SPDX-License-Identifier: GPL-2.0-only
// ESLint 9 flat config: `npm run lint` (eslint src test bench openwrt/luci). Formatting is Prettier's job
// (`npm run format`); eslint-config-prettier, last below, switches off every rule that would fight it.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** Each under both of its names: `node:x` and `x`. */
const bothNames = (paths) => paths.flatMap((p) => [p, { ...p, name: p.name.slice('node:'.length) }]);
const PERF = 'monotonicMs() (src/core/clock.ts): perf_hooks and its nine internal modules are about 0.8 MB of RSS.';
const READLINE = 'readLines() (src/platform/line-reader.ts): readline loads three modules, about 0.6 MB of RSS.';
const FS_PROMISES_WHY =
  'promisify(fs.readFile) and the like: fs/promises loads readline, fs.watch and directory modules, about 0.6 MB of RSS.';
/** Node modules the daemons do without (see "The daemons' own code" below). */
const RESTRICTED_MODULES = bothNames([
  { name: 'node:perf_hooks', message: PERF },
  { name: 'node:readline', message: READLINE },
  { name: 'node:readline/promises', message: READLINE },
]);
/** The same modules loaded other than by an import statement: import('x'), require('x'), createRequire(…)('x'). */
const DYNAMIC_LOADS = {
  selector:
    ':matches(ImportExpression > Literal.source, CallExpression > Literal.arguments)[value=/^(node:)?(perf_hooks|readline|readline\\/promises|fs\\/promises)$/]',
  message: `${PERF} ${READLINE} ${FS_PROMISES_WHY}`,
};
const FS_PROMISES = bothNames([
  { name: 'node:fs/promises', message: FS_PROMISES_WHY },
  { name: 'node:fs', importNames: ['promises'], message: FS_PROMISES_WHY },
]);

export default defineConfig(
  globalIgnores(['build/', 'dist/', 'node_modules/']),

  // --- TypeScript: src, test, bench (type-aware, through tsconfig.json) ---------------------------------
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Why recommendedTypeChecked and not strictTypeChecked: the strict set adds ~1000 findings here,
      // mostly restrict-template-expressions on numbers in log and error texts, no-non-null-assertion on
      // indexed reads that noUncheckedIndexedAccess already makes explicit, and no-unnecessary-condition
      // on defensive checks of decoded wire data. None of them found a bug.
      //
      // The no-unsafe-* rules of the recommended set stay on: wire and file input is decoded as `unknown`
      // and narrowed by the validators (src/core/schema.ts, src/proto/*), so `any` only appears where
      // JSON.parse's result is used as is; give it a type there (`JSON.parse(text) as unknown`, or
      // `as Shape` in a test that reads a file it knows) instead of switching the rules off.

      // A promise nobody awaits loses its rejection (an unhandled rejection ends the daemon). Fire and
      // forget only with `void` and a .catch that logs; node:test's test()/describe() are awaited by the
      // runner, so their promises are safe to drop.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] },
      ],
      // An async function where a callback's result is ignored (event emitters, setTimeout, forEach):
      // its rejection goes nowhere.
      '@typescript-eslint/no-misused-promises': 'error',
      // `async` methods without `await` are how the fakes and stubs implement Promise-returning
      // interfaces (a throw becomes a rejection, as in the real implementation).
      '@typescript-eslint/require-await': 'off',
      // `_name` marks a binding kept on purpose (a positional parameter, a skipped tuple element).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      // Cheap checks beyond the recommended set that catch real mistakes and cost nothing today:
      '@typescript-eslint/return-await': ['error', 'in-try-catch'], // `return p` inside try skips the catch
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-deprecated': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-self-compare': 'error',
      'no-unreachable-loop': 'error',
      'no-template-curly-in-string': 'error',
      radix: 'error',
    },
  },

  // --- The daemons' own code: what they load is RSS on a router ------------------------------------------
  // A CN should stay under 50 MB RSS with 250 clients (bench/dhcp --memory; openwrt/README.md, "Memory").
  // Each of Node's modules loaded costs its source and compiled code: these have a cheaper equal here.
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', { name: 'performance', message: PERF }],
      'no-restricted-imports': ['error', { paths: [...RESTRICTED_MODULES, ...FS_PROMISES] }],
      'no-restricted-syntax': ['error', DYNAMIC_LOADS],
      'no-restricted-properties': [
        'error',
        { object: 'globalThis', property: 'performance', message: PERF },
        { object: 'fs', property: 'promises', message: FS_PROMISES_WHY },
      ],
    },
  },
  // The MLR's state file (MLR only; the MLR has no such budget) keeps fs/promises' FileHandle.
  {
    files: ['src/platform/state-file.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: RESTRICTED_MODULES }] },
  },

  // --- LuCI views: browser JavaScript run by LuCI's loader ---------------------------------------------
  // Each file is the body of a function LuCI builds from it ('use strict', 'require x' directives, then
  // `return view.extend({...})`), hence script mode with a top-level return. Written in the ES5 style of
  // LuCI's own views so they run on every browser LuCI supports; the globals are the ones LuCI provides.
  {
    files: ['openwrt/luci/**/htdocs/**/*.js'],
    extends: [js.configs.recommended],
    languageOptions: {
      ecmaVersion: 5,
      sourceType: 'script',
      parserOptions: { ecmaFeatures: { globalReturn: true } },
      globals: {
        ...globals.browser,
        Promise: 'readonly', // ES2015, which every browser LuCI supports has (LuCI itself relies on it)
        cbi_update_table: 'readonly',
        L: 'readonly',
        E: 'readonly',
        _: 'readonly',
        N_: 'readonly',
        baseclass: 'readonly',
        dom: 'readonly',
        form: 'readonly',
        fs: 'readonly',
        network: 'readonly',
        poll: 'readonly',
        request: 'readonly',
        rpc: 'readonly',
        uci: 'readonly',
        ui: 'readonly',
        validation: 'readonly',
        view: 'readonly',
        widgets: 'readonly',
      },
    },
    rules: {
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-unused-vars': ['error', { caughtErrors: 'none' }], // ES5 has no `catch {}` without a binding
      // The option checks mirror src/core/config.ts, which rejects control characters on purpose.
      'no-control-regex': 'off',
    },
  },

  // this file and any other tooling script at the top
  {
    files: ['*.js'],
    extends: [js.configs.recommended],
    languageOptions: { globals: globals.node },
  },

  prettier,
);
