package imagebuilder

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"imagebuilder/imagebuilder/images"
)

// BuilderID identifies the artifacts of this builder.
const BuilderID = "imagebuilder.image"

// Builder is the "imagebuilder" builder.
type Builder struct {
	config Config
}

var _ packersdk.Builder = (*Builder)(nil)

// ConfigSpec is the HCL2 schema of the configuration.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare validates the configuration.
func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	warnings, err := b.config.Prepare(raws...)
	return nil, warnings, err
}

// Run builds the images; on error no artifact is left under its final name.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, _ packersdk.Hook) (packersdk.Artifact, error) {
	w := uiWriter(ui)
	defer w.Close()
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	src := b.config.Source()
	ui.Say(fmt.Sprintf("Building %s from %s", filepath.Join(src.OutputDirectory, src.ImageName), src.Base))
	built, err := images.Build(ctx, log, src)
	if err != nil {
		return nil, err
	}
	a := newArtifact(built)
	for _, f := range a.files {
		ui.Say(fmt.Sprintf("%s  sha256:%s", f.Path, f.SHA256))
	}
	return a, nil
}

// uiWriter turns log lines into ui messages.
func uiWriter(ui packersdk.Ui) io.WriteCloser {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			ui.Say(sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	return pw
}
