/** Dependency rules for src/: no import cycles, and the shared layer stays below the threads. */
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
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
