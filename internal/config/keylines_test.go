package config

import (
	"bytes"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

const keyLinesDoc = `# comment with [fake] = header
top = "value # not a comment"
"quoted.key" = 1 # comment
dotted . inner = 'literal [x]'
multi = """
fake = 1
[fake]
"""
lit = '''
[[fake]]
'''
arr = [
  1, # comment ]
  "two",
  [3, 4],
]

[table]   # comment
a = { b = 1, c = { d = "}" } }

[[arr2]]
x = 1

[[arr2]]
x = 2
[[arr2.sub]]
y = "a"
[[arr2.sub]]
y = "b"

[ "spaced" . 'tbl' ]
z = [
  { w = 1 },
  { w = 2 },
]
`

func TestKeyLines(t *testing.T) {
	// The document must be valid TOML, or the test means nothing.
	var v map[string]any
	if _, err := toml.Decode(keyLinesDoc, &v); err != nil {
		t.Fatalf("test document: %v", err)
	}
	kl := scanKeyLines([]byte(keyLinesDoc))
	tests := []struct {
		path keyPath
		line int
	}{
		{keyPath{"top"}, 2},
		{keyPath{"quoted.key"}, 3},
		{keyPath{"dotted"}, 4},
		{keyPath{"dotted", "inner"}, 4},
		{keyPath{"multi"}, 5},
		{keyPath{"lit"}, 9},
		{keyPath{"arr"}, 12},
		{keyPath{"arr", "[1]"}, 14},
		{keyPath{"arr", "[2]"}, 15},
		{keyPath{"table"}, 18},
		{keyPath{"table", "a", "c", "d"}, 19},
		{keyPath{"arr2", "[0]", "x"}, 22},
		{keyPath{"arr2", "[1]"}, 24},
		{keyPath{"arr2", "[1]", "x"}, 25},
		{keyPath{"arr2", "[1]", "sub", "[1]", "y"}, 29},
		{keyPath{"spaced", "tbl"}, 31},
		{keyPath{"spaced", "tbl", "z", "[1]", "w"}, 34},
		// Missing keys fall back to the enclosing table.
		{keyPath{"arr2", "[1]", "missing"}, 24},
		{keyPath{"nothing"}, 0},
		{keyPath{"fake"}, 0},
	}
	for _, tc := range tests {
		if got := kl.line(tc.path); got != tc.line {
			t.Errorf("line(%s) = %d, want %d", tc.path, got, tc.line)
		}
	}
	// Paths without indices, as the TOML library reports unknown keys.
	for _, tc := range []struct {
		key  toml.Key
		line int
	}{
		{toml.Key{"arr2", "sub", "y"}, 27},
		{toml.Key{"spaced", "tbl", "z", "w"}, 33},
		{toml.Key{"table", "a", "b"}, 19},
	} {
		if got := kl.plainLine(tc.key); got != tc.line {
			t.Errorf("plainLine(%v) = %d, want %d", tc.key, got, tc.line)
		}
	}
}

func TestKeyPathString(t *testing.T) {
	p := keyPath{"domain", "[1]", "dkim", "[0]", "a b", "x"}
	if got, want := p.String(), `domain[1].dkim[0]."a b".x`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// FuzzKeyLines checks that, for any document the TOML library accepts, the
// scanner finds a line for every key and never runs past the last line.
func FuzzKeyLines(f *testing.F) {
	f.Add(keyLinesDoc)
	f.Add(fullConf)
	f.Add(fullDomains)
	var b bytes.Buffer
	if err := describe(&b, true); err != nil {
		f.Fatal(err)
	}
	f.Add(b.String())
	f.Add("a = \"\"\"x\"\"\"\"\"\nb = 1\n")
	f.Add("a = '''x'''''\nb = 1\n")
	f.Add("\"\\u00e9\" = 1\n")
	f.Fuzz(func(t *testing.T, doc string) {
		var v map[string]any
		md, err := toml.Decode(doc, &v)
		kl := scanKeyLines([]byte(doc)) // Must not panic or hang on any input.
		if err != nil {
			return
		}
		lines := strings.Count(doc, "\n") + 1
		for _, k := range md.Keys() {
			l := kl.plainLine(k)
			if l < 1 || l > lines {
				t.Fatalf("key %v: line %d, document has %d lines", k, l, lines)
			}
		}
	})
}
