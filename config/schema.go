package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// schemaCheck walks the YAML document against the Config struct tree and
// returns every unknown key and every scalar that does not fit its field,
// each with its path and line (the YAML decoder stops at the first such
// problem; an operator fixing a file wants them all at once), and the
// document without those keys (values that do not fit, lists holding such
// values), for the decoder and the validation to report the rest; nil and
// nil when there is nothing to report or the YAML does not parse.
func schemaCheck(path string, data []byte) (Errors, []byte) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil || len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return nil, nil // syntax errors are the decoder's to report
	}
	var errs Errors
	add := func(p string, n ast.Node, format string, args ...any) {
		line := 0
		if tok := n.GetToken(); tok != nil && tok.Position != nil {
			line = tok.Position.Line
		}
		errs = append(errs, Error{File: path, Line: line, Path: p, Msg: fmt.Sprintf(format, args...)})
	}
	// walk reports the problems of node n for a field of type t, and
	// whether the field must be dropped (its own value is wrong); bad keys
	// inside a mapping are dropped from it.
	var walk func(p string, n ast.Node, t reflect.Type) (bad bool)
	walk = func(p string, n ast.Node, t reflect.Type) bool {
		before := len(errs)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch v := n.(type) {
		case *ast.TagNode:
			return walk(p, v.Value, t)
		case *ast.AnchorNode:
			return walk(p, v.Value, t)
		case *ast.AliasNode, *ast.NullNode, nil:
			return false
		}
		if reflect.PointerTo(t).Implements(textUnmarshaler) {
			s, ok := scalarText(n)
			if !ok {
				add(p, n, "want a single value, not a %s", nodeKind(n))
				return true
			}
			if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
				add(p, n, "%v", err)
			}
			return len(errs) > before
		}
		switch t.Kind() {
		case reflect.Struct:
			m, ok := n.(*ast.MappingNode)
			if !ok {
				if mv, ok2 := n.(*ast.MappingValueNode); ok2 {
					// A one-key mapping: the decoder reads it as is.
					key := mv.Key.String()
					ft, ok := fieldByTag(t, key)
					if !ok {
						add(joinPath(p, key), mv.Key, "unknown field %q%s", key, suggest(t, key))
						return true
					}
					return walk(joinPath(p, key), mv.Value, ft)
				}
				add(p, n, "want a mapping of keys, not a %s", nodeKind(n))
				return true
			}
			kept := m.Values[:0]
			for _, kv := range m.Values {
				key := kv.Key.String()
				kp := joinPath(p, key)
				ft, ok := fieldByTag(t, key)
				if !ok {
					add(kp, kv.Key, "unknown field %q%s", key, suggest(t, key))
					continue
				}
				if walk(kp, kv.Value, ft) {
					continue
				}
				kept = append(kept, kv)
			}
			if len(kept) == 0 && len(m.Values) > 0 {
				// Every key was dropped: drop the section (an empty block
				// mapping does not print back as YAML that parses), which
				// leaves its defaults, as an empty one would.
				return true
			}
			m.Values = kept
		case reflect.Slice:
			s, ok := n.(*ast.SequenceNode)
			if !ok {
				add(p, n, "want a list, not a %s", nodeKind(n))
				return true
			}
			bad := false
			for i, e := range s.Values {
				// A bad element drops the whole list: dropping the element
				// alone would renumber the others' paths.
				if walk(fmt.Sprintf("%s[%d]", p, i), e, t.Elem()) {
					bad = true
				}
			}
			return bad
		case reflect.Map:
			// Maps are free-form; the decoder checks their values.
		case reflect.String:
			if _, ok := scalarText(n); !ok {
				add(p, n, "want a string, not a %s", nodeKind(n))
			}
			return len(errs) > before
		case reflect.Bool:
			s, ok := scalarText(n)
			if _, err := strconv.ParseBool(s); !ok || err != nil {
				add(p, n, "want true or false, got %s", describe(n, s, ok))
			}
			return len(errs) > before
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			s, ok := scalarText(n)
			if _, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, t.Bits()); !ok || err != nil {
				add(p, n, "want a whole number, got %s", describe(n, s, ok))
			}
			return len(errs) > before
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			s, ok := scalarText(n)
			if _, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 0, t.Bits()); !ok || err != nil {
				add(p, n, "want a whole number >= 0, got %s", describe(n, s, ok))
			}
			return len(errs) > before
		case reflect.Float32, reflect.Float64:
			s, ok := scalarText(n)
			if _, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64); !ok || err != nil {
				add(p, n, "want a number, got %s", describe(n, s, ok))
			}
			return len(errs) > before
		}
		return false
	}
	walk("", f.Docs[0].Body, reflect.TypeOf(Config{}))
	if len(errs) == 0 {
		return nil, nil
	}
	return errs, []byte(f.String())
}

var textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()

func fieldByTag(t reflect.Type, key string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == key && name != "-" && f.IsExported() {
			return f.Type, true
		}
	}
	return nil, false
}

// suggest names a known key that differs from key by case, dashes or a
// letter or two, so "max-offers" or "maxoffers" point to "max_offers".
func suggest(t reflect.Type, key string) string {
	norm := func(s string) string { return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s)) }
	for i := 0; i < t.NumField(); i++ {
		name := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if name != "" && name != "-" && norm(name) == norm(key) {
			return fmt.Sprintf(" (did you mean %q?)", name)
		}
	}
	return ""
}

func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	case ast.ScalarNode:
		if tok := n.GetToken(); tok != nil {
			return tok.Value, true
		}
	}
	return "", false
}

func describe(n ast.Node, s string, scalar bool) string {
	if !scalar {
		return "a " + nodeKind(n)
	}
	return strconv.Quote(s)
}

func nodeKind(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "mapping"
	case *ast.SequenceNode:
		return "list"
	default:
		return "value"
	}
}
