// The page's input parser: the text box's logits (a row a line, values apart by spaces or one
// comma) and the labels (one a row). Strict, so that nothing typed becomes a silent value: a
// value is a decimal number (or inf, -inf, nan), within float32; a label is a decimal integer
// within int32; an empty value (a leading, trailing or doubled comma), hex, a value past
// float32 and a label count other than the rows' are errors naming the entry.

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const SPECIAL = { inf: Infinity, "+inf": Infinity, "-inf": -Infinity, nan: NaN };
const INTEGER = /^[+-]?\d+$/;
const F32_MAX = 3.4028234663852886e38;

// The values of one line, split at spaces or a comma (with spaces around it).
function fields(line) {
  return line.trim().split(/\s*,\s*|\s+/);
}

// One logit of `where` (for messages) as a number that float32 holds.
function logit(text, where) {
  const special = SPECIAL[text.toLowerCase()];
  if (special !== undefined) return special;
  if (text === "") throw new Error(`${where} is empty (a leading, trailing or doubled comma?)`);
  if (!NUMBER.test(text)) throw new Error(`${where}, "${text}", is not a decimal number`);
  const v = Number(text);
  if (!Number.isFinite(v) || Math.abs(v) > F32_MAX) {
    throw new Error(`${where}, ${text}, is beyond float32's range`);
  }
  return v;
}

// One label of `where` as an int32.
function label(text, where) {
  if (!INTEGER.test(text)) throw new Error(`${where}, "${text}", is not a decimal integer`);
  const v = Number(text);
  if (!Number.isSafeInteger(v) || v < -2147483648 || v > 2147483647) {
    throw new Error(`${where}, ${text}, is beyond int32's range`);
  }
  return v;
}

// Parses the logits text and the labels text: { logits: Float32Array, rows, classes,
// labels: Int32Array }, or throws an Error naming the first bad entry.
export function parseBatch(logitsText, labelsText) {
  const lines = logitsText.split("\n").filter((l) => l.trim().length > 0);
  if (lines.length === 0) throw new Error("no logits: enter at least one row");
  const rows = lines.map((line, i) =>
    fields(line).map((text, j) => logit(text, `row ${i + 1}, value ${j + 1}`)));
  const classes = rows[0].length;
  rows.forEach((row, i) => {
    if (row.length !== classes) throw new Error(`row ${i + 1} has ${row.length} values, row 1 has ${classes}`);
  });
  const labelTexts = labelsText.trim() === "" ? [] : fields(labelsText);
  const labels = labelTexts.map((text, i) => {
    if (text === "") throw new Error(`label ${i + 1} is empty (a leading, trailing or doubled comma?)`);
    return label(text, `label ${i + 1}`);
  });
  if (labels.length !== rows.length) {
    throw new Error(`${labels.length} label(s) for ${rows.length} row(s): give one label a row`);
  }
  return { logits: new Float32Array(rows.flat()), rows: rows.length, classes, labels: new Int32Array(labels) };
}
