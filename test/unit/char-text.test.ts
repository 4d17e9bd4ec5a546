// Text uploads for character models: the vocabulary, the sequences and their next-character
// labels, and every refusal at its place.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MAX_VOCABULARY, parseCharTextDataset, whereInText } from "../../lib/data/formats/char-text.ts";
import { formatFor } from "../../lib/data/formats/index.ts";
import { ValidationError } from "../../lib/errors.ts";

const at = (path: string, message: RegExp) => (e: unknown) => e instanceof ValidationError && e.problems[0].path === path && message.test(e.problems[0].message);

describe("text uploads", () => {
  test("a sorted vocabulary after the padding id 0, sequences of ids, each step labelled with the next character", () => {
    const d = parseCharTextDataset("abcabcabcab", { name: "t", sequenceLength: "3" });
    assert.deepEqual(d.outputs, [{ name: "output", task: "classification", classes: ["", "a", "b", "c"], shape: [3] }]);
    assert.deepEqual(d.inputs, [{ name: "input", shape: [3], kind: "sequence" }]);
    // 11 characters: 10 have a successor, 3 whole sequences of 3.
    assert.equal(d.rows, 3);
    assert.deepEqual([...d.features], [1, 2, 3, 1, 2, 3, 1, 2, 3]);
    assert.deepEqual([...d.targets], [2, 3, 1, 2, 3, 1, 2, 3, 1]);
    assert.deepEqual(d.warnings, ["the last 1 character is in no sequence (the text is cut into sequences of 3)"]);
  });

  test("ids follow code points, whatever order the text has; an emoji is one character; CRLF is \\n", () => {
    const d = parseCharTextDataset("zé🙂a\r\nz", { name: "t", sequenceLength: "5" });
    assert.deepEqual(d.outputs[0].classes, ["", "\n", "a", "z", "é", "🙂"]);
    assert.deepEqual([...d.features], [3, 4, 5, 2, 1]);
    assert.deepEqual([...d.targets], [4, 5, 2, 1, 3]);
    assert.ok(d.warnings?.some((w) => /CRLF/.test(w)));
  });

  test("is the registry's text/plain format", () => {
    const format = formatFor("text/plain");
    assert.equal(format?.name, "text");
    assert.equal(format?.body, "text");
  });

  test("refusals name what is wrong", () => {
    const q = { name: "t", sequenceLength: "4" };
    assert.throws(() => parseCharTextDataset("", q), at("text", /is empty/));
    assert.throws(() => parseCharTextDataset("abcd", q), at("text", /has 4 characters; \?sequenceLength=4 needs at least 5/));
    assert.throws(() => parseCharTextDataset("abcdefgh", { name: "t" }), at("querystring.sequenceLength", /is required/));
    for (const bad of ["0", "1025", "2.5", "x", "-3", ""]) {
      assert.throws(() => parseCharTextDataset("abcdefgh", { name: "t", sequenceLength: bad }), at("querystring.sequenceLength", /expected an integer from 1 to 1024/), bad);
    }
    assert.throws(() => parseCharTextDataset("abcdefgh", { sequenceLength: "4" }), at("querystring.name", /is required/));
    assert.throws(() => parseCharTextDataset("abcdefgh", { ...q, label: "x" }), at("querystring.label", /does not apply to a text upload/));
    assert.throws(() => parseCharTextDataset("abcdefgh", { ...q, task: "regression" }), at("querystring.task", /classification/));
    const wide = Array.from({ length: MAX_VOCABULARY + 1 }, (_, i) => String.fromCodePoint(0x4e00 + i)).join("");
    assert.throws(() => parseCharTextDataset(wide, q), at("text", /has 1001 distinct characters; at most 1000/));
  });

  test("a place in the text is its line and column", () => {
    assert.equal(whereInText("ab\ncd\u0000e", "\u0000"), "text line 2, column 3");
    assert.equal(whereInText("🙂x", "x"), "text line 1, column 2");
    assert.equal(whereInText("abc", "z"), undefined);
  });
});
