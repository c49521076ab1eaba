// The page's input parser (parse.js), run by Node's test runner: every input the page once
// took silently as another value is now an error naming its entry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBatch } from "./parse.js";

test("rows and labels parse as typed arrays", () => {
  const got = parseBatch("1 2.5, -3\n 4e1,.5   -inf\n", "0, 2");
  assert.equal(got.rows, 2);
  assert.equal(got.classes, 3);
  assert.deepEqual([...got.logits], [1, 2.5, -3, 40, 0.5, -Infinity]);
  assert.deepEqual([...got.labels], [0, 2]);
  assert.ok(Number.isNaN(parseBatch("nan 1", "0").logits[0]));
});

test("a leading, trailing or doubled comma is an error, not a 0", () => {
  for (const text of [",1 2", "1 2,", "1,,2"]) {
    assert.throws(() => parseBatch(text, "0"), /empty/, text);
  }
  assert.throws(() => parseBatch("1 2", "0,"), /label 2 is empty/);
});

test("labels past int32, in exponent form or in hex are errors, not other classes", () => {
  for (const label of ["4294967296", "1e21", "0x10", "1.5", "abc"]) {
    assert.throws(() => parseBatch("1 2", label), /label 1/, label);
  }
});

test("logits past float32 or in hex are errors, not infinities", () => {
  assert.throws(() => parseBatch("1e39 2", "0"), /beyond float32/);
  assert.throws(() => parseBatch("0x10 2", "0"), /not a decimal number/);
  assert.throws(() => parseBatch("1 two", "0"), /row 1, value 2/);
});

test("the label count must match the rows", () => {
  assert.throws(() => parseBatch("1 2\n3 4", "0"), /1 label\(s\) for 2 row\(s\)/);
  assert.throws(() => parseBatch("1 2", "0 1"), /2 label\(s\) for 1 row\(s\)/);
  assert.throws(() => parseBatch("1 2\n3", "0 1"), /row 2 has 1 values/);
});
