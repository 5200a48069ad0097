package pkgbuild

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func sbomResults() []Result {
	md := func(name, id string, req map[string]string, src map[string]SourceDigest) *Metadata {
		return &Metadata{Name: name, ID: id, BuilderVersion: BuilderVersion, Requires: req, Sources: src}
	}
	return []Result{
		{Name: "tool", ID: "tool--" + strings.Repeat("b", 32), SHA256: strings.Repeat("2", 64), Metadata: md("tool", "tool--"+strings.Repeat("b", 32),
			map[string]string{"lib": "lib--" + strings.Repeat("a", 32)},
			map[string]SourceDigest{
				"mod":  {Kind: KindGoModule, Digest: strings.Repeat("c", 64), URL: "example.com/tool/v2@v2.1.0"},
				"repo": {Kind: KindGit, Digest: strings.Repeat("d", 40), URL: "https://127.0.0.1/tool.git"},
			})},
		{Name: "lib", ID: "lib--" + strings.Repeat("a", 32), SHA256: strings.Repeat("1", 64), Metadata: md("lib", "lib--"+strings.Repeat("a", 32), nil,
			map[string]SourceDigest{
				"tar": {Kind: KindURLExtract, Digest: strings.Repeat("e", 64), URL: "https://127.0.0.1/lib-1.0.tar.gz"},
				"src": {Kind: KindDir, Digest: strings.Repeat("f", 64)},
			})},
	}
}

func TestSBOM(t *testing.T) {
	in := SBOMInput{BundleName: "bundle.tar.zst", BundleSHA256: strings.Repeat("9", 64), Prefix: "/opt/cluster", SourceDateEpoch: 1700000000, Packages: sbomResults()}
	b, err := SBOM(in)
	if err != nil {
		t.Fatal(err)
	}
	// Deterministic: the same input in another order gives the same bytes.
	rev := in
	rev.Packages = []Result{in.Packages[1], in.Packages[0]}
	if b2, err := SBOM(rev); err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("sbom differs with package order: %v", err)
	}
	var doc spdxDocument
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXID != "SPDXRef-DOCUMENT" ||
		doc.CreationInfo.Created != "2023-11-14T22:13:20Z" || !strings.HasSuffix(doc.DocumentNamespace, in.BundleSHA256) {
		t.Errorf("document header: %+v", doc)
	}
	byID := map[string]spdxPackage{}
	for _, p := range doc.Packages {
		if _, dup := byID[p.SPDXID]; dup {
			t.Errorf("SPDXID %s twice", p.SPDXID)
		}
		byID[p.SPDXID] = p
		if p.DownloadLocation == "" || p.LicenseConcluded == "" || p.CopyrightText == "" {
			t.Errorf("%s lacks a required field: %+v", p.SPDXID, p)
		}
	}
	checks := map[string]func(spdxPackage) bool{
		"SPDXRef-Bundle": func(p spdxPackage) bool { return p.Checksums[0].ChecksumValue == in.BundleSHA256 },
		"SPDXRef-Package-lib": func(p spdxPackage) bool {
			return p.VersionInfo == in.Packages[1].ID && p.Checksums[0].ChecksumValue == strings.Repeat("1", 64)
		},
		"SPDXRef-Package-tool": func(p spdxPackage) bool { return p.PackageFileName == "packages/"+in.Packages[0].ID },
		"SPDXRef-Source-lib-0": func(p spdxPackage) bool {
			return p.Name == "lib/src" && strings.Contains(p.SourceInfo, strings.Repeat("f", 64))
		},
		"SPDXRef-Source-lib-1": func(p spdxPackage) bool {
			return p.DownloadLocation == "https://127.0.0.1/lib-1.0.tar.gz" && p.Checksums[0].ChecksumValue == strings.Repeat("e", 64)
		},
		"SPDXRef-Source-tool-0": func(p spdxPackage) bool {
			return p.ExternalRefs[0].ReferenceLocator == "pkg:golang/example.com/tool/v2@v2.1.0" && p.VersionInfo == "v2.1.0"
		},
		"SPDXRef-Source-tool-1": func(p spdxPackage) bool {
			return p.DownloadLocation == "git+https://127.0.0.1/tool.git@"+strings.Repeat("d", 40) && p.Checksums[0].Algorithm == "SHA1"
		},
	}
	for id, ok := range checks {
		p, found := byID[id]
		if !found || !ok(p) {
			t.Errorf("%s: %+v", id, p)
		}
	}
	if len(doc.Packages) != 7 {
		t.Errorf("%d SPDX packages, want bundle + 2 packages + 4 sources", len(doc.Packages))
	}
	rels := map[string]bool{}
	for _, r := range doc.Relationships {
		rels[r.SPDXElementID+" "+r.RelationshipType+" "+r.RelatedSPDXElement] = true
	}
	for _, want := range []string{
		"SPDXRef-DOCUMENT DESCRIBES SPDXRef-Bundle",
		"SPDXRef-Bundle CONTAINS SPDXRef-Package-lib",
		"SPDXRef-Bundle CONTAINS SPDXRef-Package-tool",
		"SPDXRef-Package-tool DEPENDS_ON SPDXRef-Package-lib",
		"SPDXRef-Package-tool GENERATED_FROM SPDXRef-Source-tool-0",
		"SPDXRef-Package-lib GENERATED_FROM SPDXRef-Source-lib-1",
	} {
		if !rels[want] {
			t.Errorf("no relationship %q", want)
		}
	}

	t.Run("requirement missing from the bundle", func(t *testing.T) {
		bad := in
		bad.Packages = in.Packages[:1]
		if _, err := SBOM(bad); err == nil || !strings.Contains(err.Error(), "requires lib") {
			t.Fatalf("got %v", err)
		}
	})
}
