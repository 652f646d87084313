// Lists every function, method, accessor and arrow longer than 70 lines in product code (issue
// 17: "no function over 70 lines outside tests and simulator data tables without a reason in a
// comment"). Parsed with the TypeScript compiler, so strings, templates, regexes and comments
// cannot fool it. A function is counted from its first line to its last, blank lines, comments
// and nested functions included (as ESLint's max-lines-per-function counts by default).
//
// A reason is a comment directly before the function, or before the statement, property or
// export that holds it, that says "70 lines" (e.g. "// One flat switch: longer than 70 lines,
// and clearer whole."). Data tables are not functions, so they are never counted.
//
//   deno run -A scripts/long_functions.ts [--all] [--json] [paths…]
//     lists the unexplained ones (exit 1 if any); --all lists the explained ones too.
import ts from "typescript";

export const LIMIT = 70;

/** Product code: what the rule covers. tests/ and node_modules are outside it. */
export const ROOTS = ["shared", "supabase/functions", "dev", "scripts", "bench"];
const EXTENSIONS = [".ts", ".js"];
const SKIP_DIRS = new Set(["node_modules", "results", ".settle"]);

export interface LongFunction {
  /** Relative to the repository root, with forward slashes. */
  file: string;
  /** 1-based line of the function's first token. */
  line: number;
  name: string;
  lines: number;
  /** The reason comment's text, when it has one. */
  reason?: string;
}

const REASON = /\b70 lines\b/i;

function isFunction(node: ts.Node): node is ts.FunctionLikeDeclaration {
  return ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) || ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node) || ts.isFunctionExpression(node) ||
    ts.isArrowFunction(node);
}

/** A readable name: the declared one, else what the function is assigned to or passed to. */
function nameOf(node: ts.FunctionLikeDeclaration, src: ts.SourceFile): string {
  if (ts.isConstructorDeclaration(node)) return "constructor";
  if (node.name) return node.name.getText(src);
  const p = node.parent;
  if (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p)) {
    return p.name.getText(src);
  }
  if (ts.isBinaryExpression(p)) return p.left.getText(src);
  if (ts.isCallExpression(p)) return `(callback of ${p.expression.getText(src).slice(0, 40)})`;
  return "(anonymous)";
}

/** The nodes whose leading comments may carry the function's reason. */
function holders(node: ts.Node): ts.Node[] {
  const out = [node];
  let n = node.parent;
  while (
    n && (ts.isVariableDeclaration(n) || ts.isVariableDeclarationList(n) ||
      ts.isVariableStatement(n) || ts.isPropertyAssignment(n) || ts.isPropertyDeclaration(n) ||
      ts.isExportAssignment(n) || ts.isParenthesizedExpression(n) || ts.isAsExpression(n) ||
      ts.isCallExpression(n) || ts.isReturnStatement(n) || ts.isExpressionStatement(n) ||
      ts.isBinaryExpression(n))
  ) {
    out.push(n);
    if (ts.isVariableStatement(n) || ts.isExpressionStatement(n) || ts.isReturnStatement(n)) break;
    n = n.parent;
  }
  return out;
}

function reasonOf(node: ts.Node, src: ts.SourceFile): string | undefined {
  const text = src.getFullText();
  for (const h of holders(node)) {
    for (const c of ts.getLeadingCommentRanges(text, h.getFullStart()) ?? []) {
      const comment = text.slice(c.pos, c.end);
      if (REASON.test(comment)) return comment.replace(/\s+/g, " ").slice(0, 160);
    }
  }
  return undefined;
}

/** The long functions of one file's text. */
export function scanSource(file: string, text: string): LongFunction[] {
  const kind = file.endsWith(".js") ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
  const found: LongFunction[] = [];
  const visit = (node: ts.Node) => {
    if (isFunction(node) && node.body) {
      const start = src.getLineAndCharacterOfPosition(node.getStart(src)).line;
      const end = src.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = end - start + 1;
      if (lines > LIMIT) {
        found.push({
          file,
          line: start + 1,
          name: nameOf(node, src),
          lines,
          reason: reasonOf(node, src),
        });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return found;
}

async function* walk(dir: string, rel: string): AsyncGenerator<string> {
  const entries = [];
  for await (const e of Deno.readDir(dir)) entries.push(e);
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const path = `${dir}/${e.name}`;
    const relPath = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory && !SKIP_DIRS.has(e.name)) yield* walk(path, relPath);
    else if (e.isFile && EXTENSIONS.some((x) => e.name.endsWith(x))) yield relPath;
  }
}

/** Every long function under the roots (paths relative to root). */
export async function scanTree(root: string, roots = ROOTS): Promise<LongFunction[]> {
  const found: LongFunction[] = [];
  for (const r of roots) {
    const abs = `${root}/${r}`;
    const stat = await Deno.stat(abs).catch(() => undefined);
    if (!stat) continue;
    const files = stat.isFile ? [r] : await Array.fromAsync(walk(abs, r));
    for (const f of files) found.push(...scanSource(f, await Deno.readTextFile(`${root}/${f}`)));
  }
  return found;
}

if (import.meta.main) {
  const all = Deno.args.includes("--all");
  const asJson = Deno.args.includes("--json");
  const paths = Deno.args.filter((a) => !a.startsWith("--"));
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const found = await scanTree(root, paths.length ? paths : ROOTS);
  const shown = all ? found : found.filter((f) => !f.reason);
  if (asJson) console.log(JSON.stringify(shown, null, 2));
  else {
    for (const f of shown) {
      console.log(
        `${f.file}:${f.line}  ${f.name}  ${f.lines} lines${f.reason ? "  (reason)" : ""}`,
      );
    }
    const open = found.filter((f) => !f.reason).length;
    console.log(`${found.length} functions over ${LIMIT} lines, ${open} without a reason`);
  }
  if (found.some((f) => !f.reason)) Deno.exit(1);
}
