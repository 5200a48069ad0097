package imagebuilder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"imagebuilder/imagebuilder/images"
	"imagebuilder/pkgbuild/atomicfile"
)

// File is one file of the artifact.
type File struct {
	Kind   string // raw, qcow2, manifest, cluster-bundle
	Path   string
	SHA256 string
}

// Artifact is what the builder wrote: the images, their manifest and, when
// genconf ran, the cluster bundle.
type Artifact struct {
	built *images.Built
	files []File
}

var _ packersdk.Artifact = (*Artifact)(nil)

func newArtifact(b *images.Built) *Artifact {
	a := &Artifact{built: b}
	for _, x := range b.Result.Artifacts {
		a.files = append(a.files, File{Kind: x.Format, Path: x.Path, SHA256: x.SHA256})
	}
	if len(b.Result.Artifacts) > 0 {
		m := filepath.Join(filepath.Dir(b.Result.Artifacts[0].Path), b.Result.Name+".manifest.json")
		if sum, err := atomicfile.SHA256(m); err == nil {
			a.files = append(a.files, File{Kind: "manifest", Path: m, SHA256: sum})
		}
	}
	if b.Genconf != nil {
		a.files = append(a.files, File{Kind: "cluster-bundle", Path: b.Genconf.Bundle, SHA256: b.Genconf.BundleSHA256})
	}
	return a
}

// BuilderId names this builder.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files are every file the build wrote.
func (a *Artifact) Files() []string {
	out := make([]string, len(a.files))
	for i, f := range a.files {
		out[i] = f.Path
	}
	return out
}

// Id is the image name and the digest of its first image file.
func (a *Artifact) Id() string {
	if len(a.files) == 0 {
		return a.built.Result.Name
	}
	return a.built.Result.Name + "@sha256:" + a.files[0].SHA256
}

// String lists every file with its checksum.
func (a *Artifact) String() string {
	var sb strings.Builder
	r := a.built.Result
	fmt.Fprintf(&sb, "imagebuilder image %s (%s, role %s, bundle sha256:%s):", r.Name, r.Distro, orDash(r.Role), r.BundleSHA256)
	for _, f := range a.files {
		fmt.Fprintf(&sb, "\n  %s %s sha256:%s", f.Kind, f.Path, f.SHA256)
	}
	return sb.String()
}

// State answers "result" (the engine's *build.Result), "files" ([]File),
// and "sha256:<path>" (a file's checksum); everything else is nil.
func (a *Artifact) State(name string) interface{} {
	switch name {
	case "result":
		return a.built.Result
	case "files":
		return a.files
	}
	if p, ok := strings.CutPrefix(name, "sha256:"); ok {
		for _, f := range a.files {
			if f.Path == p {
				return f.SHA256
			}
		}
	}
	return nil
}

// Destroy removes the files.
func (a *Artifact) Destroy() error {
	var firstErr error
	for _, f := range a.files {
		if err := os.Remove(f.Path); err != nil && !os.IsNotExist(err) && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
