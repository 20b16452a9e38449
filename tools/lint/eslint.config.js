// ESLint for src, test and bench: eslint's and typescript-eslint's recommended rules.
// Formatting is Prettier's (npm run format:check), import structure dependency-cruiser's (npm run lint:deps).
// The type-aware rule sets are not on: they take about a minute of CPU on this code base for every run.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'tools/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // tests read JSON answers (MI, RPC, parse trees) field by field
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
