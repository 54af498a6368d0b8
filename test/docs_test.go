package test

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated parts of docs/ from the code")

// Markers around the generated table of docs/error-codes.md.
const (
	codesBegin = "<!-- BEGIN GENERATED from codes/codes.go by `go test ./test -run TestErrorCodesDoc -update-docs`; do not edit -->\n"
	codesEnd   = "<!-- END GENERATED -->\n"
)

// TestErrorCodesDoc keeps the table of docs/error-codes.md equal to the
// codes declared in package codes: one section per const block, one row per
// code, in source order. Run with -update-docs to rewrite it.
func TestErrorCodesDoc(t *testing.T) {
	want, err := renderCodes(filepath.Join("..", "codes"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "docs", "error-codes.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(doc, []byte(codesBegin))
	j := bytes.Index(doc, []byte(codesEnd))
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated-table markers:\n%s%s", path, codesBegin, codesEnd)
	}
	got := string(doc[i+len(codesBegin) : j])
	if got == want {
		return
	}
	if *updateDocs {
		out := append(append(append([]byte(nil), doc[:i+len(codesBegin)]...), want...), doc[j:]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date with codes/codes.go: run go test ./test -run TestErrorCodesDoc -update-docs", path)
}

var codeValue = regexp.MustCompile(`^TG_(\d+)$`)

// renderCodes renders the TG_ codes declared in the package in dir as
// Markdown: a heading per const block (the first sentence of its comment),
// then a table of code, Go name and the code's comment.
func renderCodes(dir string) (string, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return "", err
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			heading := firstSentence(gd.Doc.Text())
			var rows []string
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for k, n := range vs.Names {
					if k >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[k].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, _ := strconv.Unquote(lit.Value)
					if !codeValue.MatchString(v) {
						continue
					}
					meaning := strings.Join(strings.Fields(vs.Comment.Text()), " ")
					if meaning == "" {
						meaning = strings.Join(strings.Fields(vs.Doc.Text()), " ")
						meaning = strings.TrimPrefix(meaning, n.Name+": ")
					}
					if meaning == "" {
						meaning = "(no description in codes/codes.go yet)"
					}
					meaning = strings.TrimSuffix(meaning, ".")
					meaning = strings.NewReplacer("|", `\|`, "<", `\<`).Replace(meaning)
					rows = append(rows, fmt.Sprintf("| %s | `codes.%s` | %s |\n", v, n.Name, meaning))
				}
			}
			if heading == "" || (len(rows) == 0 && !strings.Contains(gd.Doc.Text(), "codes")) {
				continue
			}
			fmt.Fprintf(&b, "\n### %s\n\n", heading)
			if len(rows) == 0 {
				b.WriteString("None yet.\n")
				continue
			}
			b.WriteString("| code | name | meaning |\n| --- | --- | --- |\n")
			for _, r := range rows {
				b.WriteString(r)
			}
		}
	}
	b.WriteString("\n")
	return b.String(), nil
}

// firstSentence returns text up to its first full stop, without it.
func firstSentence(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if i := strings.Index(text, ". "); i >= 0 {
		text = text[:i]
	}
	return strings.TrimSuffix(text, ".")
}

// docCitation finds a citation of a page of docs/, with its anchor.
var docCitation = regexp.MustCompile(`docs/([a-z0-9-]+\.md)(#[a-z0-9-]+)?`)

// TestDocCitations checks that every docs/<page>.md#<anchor> cited in the
// Go sources and in docs/ itself names a page that exists and an anchor it
// declares (<a id="...">), so that code comments keep pointing somewhere.
func TestDocCitations(t *testing.T) {
	root := ".."
	anchors := map[string]map[string]bool{} // page -> anchors
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	idAttr := regexp.MustCompile(`<a id="([a-z0-9-]+)"></a>`)
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, sub := range idAttr.FindAllSubmatch(b, -1) {
			m[string(sub[1])] = true
		}
		anchors[filepath.Base(p)] = m
	}
	check := func(path string, text []byte) {
		for _, sub := range docCitation.FindAllSubmatch(text, -1) {
			page, anchor := string(sub[1]), strings.TrimPrefix(string(sub[2]), "#")
			m, ok := anchors[page]
			switch {
			case !ok:
				t.Errorf("%s cites docs/%s, which does not exist", path, page)
			case anchor != "" && !m[anchor]:
				t.Errorf("%s cites docs/%s#%s, which that page does not declare (<a id=%q></a>)", path, page, anchor, anchor)
			}
		}
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".md")) {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			check(path, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// In-page links of docs/: (#anchor).
	inPage := regexp.MustCompile(`\]\(#([a-z0-9-]+)\)`)
	for _, p := range pages {
		b, _ := os.ReadFile(p)
		for _, sub := range inPage.FindAllSubmatch(b, -1) {
			if !anchors[filepath.Base(p)][string(sub[1])] {
				t.Errorf("%s links to #%s, which it does not declare", p, sub[1])
			}
		}
	}
}
