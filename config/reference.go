package config

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"reflect"
	"sort"
	"strings"
)

// Reference renders the configuration reference (config/REFERENCE.md) from
// the doc comments of the struct tree in srcDir (this package's sources) and
// the values of Default(), so that the reference cannot drift from the code.
func Reference(srcFS fs.FS) (string, error) {
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	entries, err := fs.ReadDir(srcFS, ".")
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		src, err := fs.ReadFile(srcFS, n)
		if err != nil {
			return "", err
		}
		f, err := parser.ParseFile(fset, n, src, parser.ParseComments)
		if err != nil {
			return "", err
		}
		files[n] = f
	}
	// Struct types by name, with each field's doc comment.
	structs := map[string]*ast.StructType{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, sp := range gd.Specs {
				ts, ok := sp.(*ast.TypeSpec)
				if !ok {
					continue
				}
				if st, ok := ts.Type.(*ast.StructType); ok {
					structs[ts.Name.Name] = st
				}
			}
		}
	}
	var b strings.Builder
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("Generated from the doc comments of package config by `go run ./config/internal/refgen`\n")
	b.WriteString("(a test fails when this file is stale). Every key is optional unless its text says\n")
	b.WriteString("required; the default column shows `config.Default()`. Sizes take units (`256KiB`,\n")
	b.WriteString("`2GiB`), durations Go syntax (`5s`, `250ms`). An example file is\n")
	b.WriteString("[testdata/example.yaml](testdata/example.yaml); `edge check --config FILE` validates one.\n\n")
	b.WriteString("| key | type | default | meaning |\n|---|---|---|---|\n")
	def := Default()
	writeStruct(&b, structs, "Config", "", reflect.ValueOf(def), true)
	return b.String(), nil
}

func writeStruct(b *strings.Builder, structs map[string]*ast.StructType, name, prefix string, v reflect.Value, haveDefault bool) {
	st := structs[name]
	if st == nil {
		return
	}
	for _, f := range st.Fields.List {
		if len(f.Names) == 0 || !f.Names[0].IsExported() || f.Tag == nil {
			continue
		}
		tag := reflect.StructTag(strings.Trim(f.Tag.Value, "`")).Get("yaml")
		key := strings.Split(tag, ",")[0]
		if key == "" || key == "-" {
			continue
		}
		path := key
		if prefix != "" {
			path = prefix + "." + key
		}
		comment := ""
		if f.Doc != nil {
			comment = f.Doc.Text()
		} else if f.Comment != nil {
			comment = f.Comment.Text()
		}
		typeName := exprString(f.Type)
		for _, n := range f.Names {
			var fv reflect.Value
			if haveDefault && v.IsValid() {
				fv = v.FieldByName(n.Name)
			}
			elem := strings.TrimPrefix(strings.TrimPrefix(typeName, "[]"), "*")
			if _, isStruct := structs[elem]; isStruct {
				if strings.HasPrefix(typeName, "[]") {
					fmt.Fprintf(b, "| `%s` | list | | %s |\n", path, oneLine(comment))
					writeStruct(b, structs, elem, path+"[]", reflect.Value{}, false)
				} else {
					if comment != "" {
						fmt.Fprintf(b, "| `%s` | section | | %s |\n", path, oneLine(comment))
					}
					writeStruct(b, structs, elem, path, fv, haveDefault)
				}
				continue
			}
			fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", path, friendlyType(typeName), defaultString(fv), oneLine(comment))
		}
	}
}

func exprString(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.ArrayType:
		return "[]" + exprString(t.Elt)
	case *ast.StarExpr:
		return "*" + exprString(t.X)
	case *ast.MapType:
		return "map[" + exprString(t.Key) + "]" + exprString(t.Value)
	case *ast.SelectorExpr:
		return exprString(t.X) + "." + t.Sel.Name
	}
	return "?"
}

func friendlyType(t string) string {
	switch t {
	case "ByteSize":
		return "size"
	case "Duration":
		return "duration"
	case "*bool":
		return "bool"
	case "float64":
		return "number"
	case "int", "int64", "uint32":
		return "integer"
	case "[]string":
		return "list of strings"
	}
	return strings.TrimPrefix(t, "*")
}

func defaultString(v reflect.Value) string {
	if !v.IsValid() {
		return ""
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.IsZero() {
		switch v.Kind() {
		case reflect.Bool:
			return "false"
		case reflect.Slice, reflect.Map, reflect.String:
			return ""
		}
		return "0"
	}
	switch x := v.Interface().(type) {
	case ByteSize, Duration:
		return fmt.Sprintf("`%v`", x)
	case float64:
		return fmt.Sprintf("%.4g", x)
	case []string:
		return "`" + strings.Join(x, ", ") + "`"
	case string:
		return "`" + x + "`"
	}
	if v.Kind() == reflect.Map {
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%v: %v", k, v.MapIndex(k))
		}
		return "`" + strings.Join(parts, ", ") + "`"
	}
	return fmt.Sprintf("`%v`", v.Interface())
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", "\\|")
}
