package images

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// File is a parsed images.hcl.
type File struct {
	// Path is the file as given.
	Path string
	// Sources are the imagebuilder sources, in file order.
	Sources []*Source
	// Build lists the sources the build blocks name ("imagebuilder.NAME"),
	// in order, without repeats. Sources of other types are kept too so that
	// callers can say what they skip.
	Build []string
	// Variables are the resolved variable values.
	Variables map[string]string
	// Ranges locate each source's block and fields, for diagnostics.
	ranges map[string]map[string]hcl.Range
}

var topSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "source", LabelNames: []string{"type", "name"}},
		{Type: "build"},
	},
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"}, {Name: "default"}, {Name: "description"}, {Name: "sensitive"}, {Name: "nullable"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}},
}

// sourceFields are the attributes of a `source "imagebuilder"` block.
var sourceFields = []string{
	"base", "bundle", "genconf_config", "ip_detect", "role", "formats",
	"output_directory", "image_name", "kernel_cmdline", "disk_size_mib",
}

var sourceSchema = func() *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, f := range sourceFields {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: f, Required: f == "base" || f == "bundle" || f == "output_directory"})
	}
	return s
}()

var buildSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "name"}, {Name: "description"}, {Name: "sources"}},
}

// Parse reads src (the contents of filename). vars override variable
// defaults (like Packer's -var). Every problem comes back as an hcl
// diagnostic with file:line:col; files and paths are not checked here (see
// Validate).
func Parse(filename string, src []byte, vars map[string]string) (*File, hcl.Diagnostics) {
	p := hclparse.NewParser()
	hf, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	content, _, d := hf.Body.PartialContent(topSchema)
	diags = append(diags, d...)
	f := &File{Path: filename, Variables: map[string]string{}, ranges: map[string]map[string]hcl.Range{}}

	// Variables: default, then override.
	declared := map[string]hcl.Range{}
	for _, b := range content.Blocks.OfType("variable") {
		name := b.Labels[0]
		if _, dup := declared[name]; dup {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate variable",
				Detail: fmt.Sprintf("variable %q is declared twice", name), Subject: b.DefRange.Ptr()})
			continue
		}
		declared[name] = b.DefRange
		vc, d := b.Body.Content(variableSchema)
		diags = append(diags, d...)
		if a, ok := vc.Attributes["default"]; ok {
			v, d := a.Expr.Value(nil)
			diags = append(diags, d...)
			if !d.HasErrors() {
				s, err := convert.Convert(v, cty.String)
				if err != nil || s.IsNull() {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unsupported variable default",
						Detail: fmt.Sprintf("variable %q: imagebuilder reads string defaults only", name), Subject: a.Expr.Range().Ptr()})
				} else {
					f.Variables[name] = s.AsString()
				}
			}
		}
	}
	for _, k := range sortedKeys(vars) {
		if _, ok := declared[k]; !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undeclared variable",
				Detail: fmt.Sprintf("-var %s=…: %s declares no variable %q (declared: %s)", k, filename, k, strings.Join(sortedKeys(declared), ", "))})
			continue
		}
		f.Variables[k] = vars[k]
	}
	varVals := map[string]cty.Value{}
	for name := range declared {
		v, ok := f.Variables[name]
		if !ok {
			// Packer asks for a value; so do we, but only where it is used.
			varVals[name] = cty.DynamicVal
			continue
		}
		varVals[name] = cty.StringVal(v)
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(varVals)}}

	// Sources.
	seen := map[string]hcl.Range{}
	for _, b := range content.Blocks.OfType("source") {
		typ, name := b.Labels[0], b.Labels[1]
		key := typ + "." + name
		if prev, dup := seen[key]; dup {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate source",
				Detail: fmt.Sprintf("source %q %q is already declared at %s", typ, name, prev), Subject: b.DefRange.Ptr()})
			continue
		}
		seen[key] = b.DefRange
		if typ != SourceType {
			continue
		}
		s, rs, d := decodeSource(name, b, ctx, declared, f.Variables)
		diags = append(diags, d...)
		rs["(block)"] = b.DefRange
		f.ranges[name] = rs
		f.Sources = append(f.Sources, s)
	}

	// Build blocks.
	builds := content.Blocks.OfType("build")
	if len(builds) == 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No build block",
			Detail: fmt.Sprintf("%s has no build { sources = [...] } block", filename), Subject: hf.Body.MissingItemRange().Ptr()})
	}
	listed := map[string]bool{}
	for _, b := range builds {
		bc, _, d := b.Body.PartialContent(buildSchema)
		diags = append(diags, d...)
		a, ok := bc.Attributes["sources"]
		if !ok {
			continue
		}
		v, d := a.Expr.Value(ctx)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		list, err := convert.Convert(v, cty.List(cty.String))
		if err != nil || list.IsNull() || !list.IsWhollyKnown() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid sources",
				Detail: "build.sources must be a list of \"source.TYPE.NAME\" strings", Subject: a.Expr.Range().Ptr()})
			continue
		}
		for _, e := range list.AsValueSlice() {
			if e.IsNull() || !e.IsKnown() {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid source reference",
					Detail: "build.sources has a null entry", Subject: a.Expr.Range().Ptr()})
				continue
			}
			ref := e.AsString()
			parts := strings.Split(ref, ".")
			if len(parts) != 3 || parts[0] != "source" {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid source reference",
					Detail: fmt.Sprintf("%q: want \"source.TYPE.NAME\"", ref), Subject: a.Expr.Range().Ptr()})
				continue
			}
			key := parts[1] + "." + parts[2]
			if _, ok := seen[key]; !ok {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown source",
					Detail: fmt.Sprintf("%q names no source block in %s", ref, filename), Subject: a.Expr.Range().Ptr()})
				continue
			}
			if !listed[key] {
				listed[key] = true
				f.Build = append(f.Build, key)
			}
		}
	}
	diags = append(diags, f.conflicts()...)
	return f, diags
}

// decodeSource evaluates one source block's attributes.
func decodeSource(name string, b *hcl.Block, ctx *hcl.EvalContext, declared map[string]hcl.Range, values map[string]string) (*Source, map[string]hcl.Range, hcl.Diagnostics) {
	s := &Source{Name: name}
	rs := map[string]hcl.Range{}
	bc, diags := b.Body.Content(sourceSchema)
	for _, field := range sourceFields {
		a, ok := bc.Attributes[field]
		if !ok {
			continue
		}
		rs[field] = a.Expr.Range()
		for _, tr := range a.Expr.Variables() {
			if tr.RootName() != "var" || len(tr) < 2 {
				continue
			}
			if at, ok := tr[1].(hcl.TraverseAttr); ok {
				if _, decl := declared[at.Name]; decl {
					if _, has := values[at.Name]; !has {
						diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unset variable",
							Detail: fmt.Sprintf("variable %q has no default; pass --var %s=VALUE", at.Name, at.Name), Subject: tr.SourceRange().Ptr()})
					}
				}
			}
		}
		v, d := a.Expr.Value(ctx)
		diags = append(diags, d...)
		if d.HasErrors() || !v.IsWhollyKnown() {
			continue
		}
		bad := func(want string) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incorrect attribute value type",
				Detail: fmt.Sprintf("%s: want %s", field, want), Subject: a.Expr.Range().Ptr()})
		}
		switch field {
		case "formats":
			l, err := convert.Convert(v, cty.List(cty.String))
			if err != nil || l.IsNull() || !l.IsWhollyKnown() {
				bad("a list of strings such as [\"qcow2\"]")
				continue
			}
			s.Formats = []string{}
			for _, e := range l.AsValueSlice() {
				if e.IsNull() || !e.IsKnown() {
					bad("a list of strings such as [\"qcow2\"], without nulls")
					break
				}
				s.Formats = append(s.Formats, e.AsString())
			}
		case "disk_size_mib":
			n, err := convert.Convert(v, cty.Number)
			if err != nil || n.IsNull() {
				bad("a number of MiB")
				continue
			}
			i, acc := n.AsBigFloat().Int64()
			if acc != 0 {
				bad("a whole number of MiB")
				continue
			}
			s.DiskSizeMiB = i
		default:
			str, err := convert.Convert(v, cty.String)
			if err != nil || str.IsNull() {
				bad("a string")
				continue
			}
			*s.stringField(field) = str.AsString()
		}
	}
	return s, rs, diags
}

func (s *Source) stringField(name string) *string {
	switch name {
	case "base":
		return &s.Base
	case "bundle":
		return &s.Bundle
	case "genconf_config":
		return &s.GenconfConfig
	case "ip_detect":
		return &s.IPDetect
	case "role":
		return &s.Role
	case "output_directory":
		return &s.OutputDirectory
	case "image_name":
		return &s.ImageName
	case "kernel_cmdline":
		return &s.KernelCmdline
	}
	panic("images: no string field " + name)
}

// conflicts reports sources that would write the same output file.
func (f *File) conflicts() hcl.Diagnostics {
	var diags hcl.Diagnostics
	owner := map[string]string{}
	for _, s := range f.Sources {
		if s.OutputDirectory == "" {
			continue
		}
		for _, out := range s.Outputs() {
			key := path.Clean(out)
			if prev, ok := owner[key]; ok && prev != s.Name {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Conflicting outputs",
					Detail:  fmt.Sprintf("source %q and source %q both write %s; give them different output_directory or image_name", prev, s.Name, out),
					Subject: f.rangeOf(s.Name, "output_directory").Ptr()})
				break
			}
			owner[key] = s.Name
		}
	}
	return diags
}

// Validate checks the sources the build uses that only selects (files
// exist, fields are valid) and returns the problems as diagnostics pointing
// at the field.
func (f *File) Validate(only []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, s := range f.Selected(only) {
		for _, p := range s.Problems() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError,
				Summary: fmt.Sprintf("Invalid source %q", s.Name),
				Detail:  p.Error(), Subject: f.rangeOf(s.Name, p.Field).Ptr()})
		}
	}
	return diags
}

func (f *File) rangeOf(source, field string) hcl.Range {
	rs := f.ranges[source]
	if r, ok := rs[field]; ok {
		return r
	}
	return rs["(block)"]
}

// Selected returns the imagebuilder sources the build blocks list, filtered
// by only: patterns (path.Match globs) matched against "imagebuilder.NAME"
// and "NAME". Empty only selects all.
func (f *File) Selected(only []string) []*Source {
	byName := map[string]*Source{}
	for _, s := range f.Sources {
		byName[s.Name] = s
	}
	var out []*Source
	for _, key := range f.Build {
		typ, name, _ := strings.Cut(key, ".")
		if typ != SourceType {
			continue
		}
		s := byName[name]
		if s == nil || !matchAny(only, key, name) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// Skipped lists the build's sources of other types (Packer builds those).
func (f *File) Skipped() []string {
	var out []string
	for _, key := range f.Build {
		if !strings.HasPrefix(key, SourceType+".") {
			out = append(out, key)
		}
	}
	return out
}

func matchAny(patterns []string, names ...string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		for _, n := range names {
			if ok, _ := path.Match(p, n); ok {
				return true
			}
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
