// Parse LogQL queries with Grafana's LogQL grammar (@grafana/lezer-logql, Apache-2.0).
// stdin: a JSON array of query strings. stdout: a JSON array, one result per query:
// {"query": ..., "errors": [{"from": n, "to": n, "near": "..."}], "top": "<top node>"}.
// A query with no error node is syntactically valid LogQL for Grafana's editor.
import { parser } from "@grafana/lezer-logql";
import { readFileSync } from "node:fs";

const queries = JSON.parse(readFileSync(0, "utf8"));
const results = queries.map((query) => {
  const tree = parser.parse(query);
  const errors = [];
  tree.iterate({
    enter: (node) => {
      if (node.type.isError) {
        errors.push({ from: node.from, to: node.to, near: query.slice(Math.max(0, node.from - 15), node.to + 15) });
      }
    },
  });
  const top = tree.topNode.firstChild ? tree.topNode.firstChild.type.name : "";
  return { query, errors, top };
});
process.stdout.write(JSON.stringify(results));
