/** Dependency rules for src/: no import cycles, the contract is a leaf, the shared layer stays below the threads. */
const CONTRACT = '^src/shared/(contract/|modules/types[.]ts$)';
const ENTRIES = '^src/(main/index|worker/index|dispatcher/index|shared/script/reference)[.]ts$';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle couples its files into one unit: none in src/, type-only imports included.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'shared-below-threads',
      severity: 'error',
      comment: 'src/shared is used by every thread; it must not import a thread entry (worker, main, dispatcher).',
      from: { path: '^src/shared/' },
      to: { path: '^src/(worker|main|dispatcher)/' },
    },
    {
      name: 'contract-is-leaf',
      severity: 'error',
      comment: 'The script/module contract (modules/types.ts, contract/) imports nothing else of the project.',
      from: { path: CONTRACT },
      to: { path: '^src/', pathNot: CONTRACT },
    },
    {
      name: 'registry-from-entries',
      severity: 'error',
      comment: 'Only the thread entry points (and -c, the reference generator) import the module registry.',
      from: { path: '^src/', pathNot: ENTRIES },
      to: { path: '^src/shared/modules/registry[.]ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
