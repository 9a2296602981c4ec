// The labels of the language the server rendered the page in (console/labels.py holds them all).
let labels = {};

export function setLabels(table) {
  labels = table;
}

// t("usage.title") -> the label; {name} placeholders are filled from `values`.
export function t(key, values) {
  const text = labels[key] ?? key;
  return values ? text.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "") : text;
}
