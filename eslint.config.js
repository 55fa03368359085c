// ESLint over the whole repo (npm run lint; test/deploy/lint.test.ts runs it in CI).
// Rules that catch real problems, not taste: the recommended sets, type-aware for
// the promise rules (a forgotten await on a write is a lost or reordered change).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "data/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // tsc (noUnusedLocals, noUnusedParameters) already reports these, with `_` for the deliberate ones.
      "@typescript-eslint/no-unused-vars": "off",
      // Non-null assertions after a check are used on purpose (noUncheckedIndexedAccess is on).
      "@typescript-eslint/no-non-null-assertion": "off",
      // Void-returning callbacks may be async (fastify hooks, event handlers that log their failures).
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: false }],
      // An async function without await is how a route or an interface method returns a promise.
      "@typescript-eslint/require-await": "off",
      // Callbacks are declared in method syntax and implemented as closures: no `this` to lose.
      "@typescript-eslint/unbound-method": "off",
      // `ReadValue | "ok" | string` says which strings matter; it is documentation, not a bug.
      "@typescript-eslint/no-redundant-type-constituents": "off",
    },
  },
  {
    // vitest's asymmetric matchers (expect.any, expect.objectContaining) are typed `any`.
    files: ["test/**"],
    rules: { "@typescript-eslint/no-unsafe-assignment": "off", "@typescript-eslint/no-unsafe-argument": "off" },
  },
  {
    // TigerStyle's limit, counted as a reader counts: every line, comments and blanks included.
    files: ["**/*.ts"],
    ignores: ["test/**"],
    rules: { "max-lines-per-function": ["error", { max: 70, skipBlankLines: false, skipComments: false, IIFEs: true }] },
  },
  {
    files: ["eslint.config.js"],
    ...tseslint.configs.disableTypeChecked,
  },
);
