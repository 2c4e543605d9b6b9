// prettyJSON formats a value the way people write request files: one key
// per line, short arrays of numbers or strings kept on one line
// ({"sepal_length": [6.7]}), two-space indentation.
export function prettyJSON(value, indent = '') {
  const inner = indent + '  ';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    const flat = value.every((v) => v === null || typeof v !== 'object');
    if (flat) {
      const line = '[' + value.map((v) => JSON.stringify(v)).join(', ') + ']';
      if (line.length + indent.length <= 100) return line;
    }
    return '[\n' + value.map((v) => inner + prettyJSON(v, inner)).join(',\n') + '\n' + indent + ']';
  }
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) return '{}';
    return '{\n' + keys.map((k) => inner + JSON.stringify(k) + ': ' + prettyJSON(value[k], inner)).join(',\n') + '\n' + indent + '}';
  }
  return JSON.stringify(value);
}
