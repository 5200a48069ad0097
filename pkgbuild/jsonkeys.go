package pkgbuild

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// JSONFields returns the JSON names of the fields of struct type t, in order.
func JSONFields(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if tag != "" && tag != "-" {
			names = append(names, tag)
		}
	}
	return names
}

// exactKeys reports keys of buildinfo.json (top level and sources.*) that
// encoding/json would accept only because it matches names case-insensitively:
// "Sources" is not "sources". Unknown keys are reported by the decoder.
func exactKeys(raw []byte) []string {
	var probs []string
	check := func(where string, obj map[string]json.RawMessage, t reflect.Type) {
		known := map[string]bool{}
		for _, n := range JSONFields(t) {
			known[n] = true
		}
		for _, k := range sortedKeys(obj) {
			if !known[k] {
				probs = append(probs, fmt.Sprintf("%s%s: unknown field (field names are lowercase, e.g. %q)", where, k, strings.ToLower(k)))
			}
		}
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil {
		return nil // the decoder has reported it
	}
	check("", top, reflect.TypeOf(BuildInfo{}))
	var sources map[string]map[string]json.RawMessage
	if s, ok := top["sources"]; ok && json.Unmarshal(s, &sources) == nil {
		for _, sn := range sortedKeys(sources) {
			check("sources."+sn+".", sources[sn], reflect.TypeOf(Source{}))
		}
	}
	return probs
}
