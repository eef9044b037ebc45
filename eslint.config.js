'use strict'

// ESLint's recommended rules over the whole tree (`npm run lint`), with the
// few settings the code needs. No stylistic rules: formatting is not checked.

const js = require('@eslint/js')
const globals = require('globals')

module.exports = [
  {
    // Generated files, build output and installed packages.
    ignores: ['binding.js', 'target/', 'node_modules/', '**/node_modules/', '__test__/types/.compiled-*/', 'npm/'],
  },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  js.configs.recommended,
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: {
      ecmaVersion: 'latest',
      sourceType: 'commonjs',
      globals: { ...globals.node },
    },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: {
      ecmaVersion: 'latest',
      sourceType: 'module',
      globals: { ...globals.node },
    },
  },
  {
    rules: {
      // `catch (err)` kept for readability where err is unused; arguments
      // named `_x` are deliberately unused.
      'no-unused-vars': ['error', { caughtErrors: 'none', argsIgnorePattern: '^_' }],
      // `try { ... } catch {}`: a best-effort step whose failure changes nothing.
      'no-empty': ['error', { allowEmptyCatch: true }],
      // The library runs inside other people's processes.
      'no-extend-native': 'error',
    },
  },
  {
    // The project's size limits, for the library and the command.
    files: ['index.js', 'index.mjs', 'lib/**/*.js', 'bin/**/*.js'],
    rules: {
      'max-lines': ['error', 400],
      'max-lines-per-function': ['error', 100],
    },
  },
]
