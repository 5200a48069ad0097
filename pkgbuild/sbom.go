package pkgbuild

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// SPDX 2.3 JSON, the subset the bundle's SBOM uses.
type (
	spdxDocument struct {
		SPDXVersion       string             `json:"spdxVersion"`
		DataLicense       string             `json:"dataLicense"`
		SPDXID            string             `json:"SPDXID"`
		Name              string             `json:"name"`
		DocumentNamespace string             `json:"documentNamespace"`
		CreationInfo      spdxCreationInfo   `json:"creationInfo"`
		Packages          []spdxPackage      `json:"packages"`
		Relationships     []spdxRelationship `json:"relationships"`
	}
	spdxCreationInfo struct {
		Created  string   `json:"created"`
		Creators []string `json:"creators"`
	}
	spdxPackage struct {
		SPDXID                string            `json:"SPDXID"`
		Name                  string            `json:"name"`
		VersionInfo           string            `json:"versionInfo,omitempty"`
		PackageFileName       string            `json:"packageFileName,omitempty"`
		DownloadLocation      string            `json:"downloadLocation"`
		FilesAnalyzed         bool              `json:"filesAnalyzed"`
		Checksums             []spdxChecksum    `json:"checksums,omitempty"`
		LicenseConcluded      string            `json:"licenseConcluded"`
		LicenseDeclared       string            `json:"licenseDeclared"`
		CopyrightText         string            `json:"copyrightText"`
		SourceInfo            string            `json:"sourceInfo,omitempty"`
		PrimaryPackagePurpose string            `json:"primaryPackagePurpose,omitempty"`
		ExternalRefs          []spdxExternalRef `json:"externalRefs,omitempty"`
	}
	spdxChecksum struct {
		Algorithm     string `json:"algorithm"`
		ChecksumValue string `json:"checksumValue"`
	}
	spdxExternalRef struct {
		ReferenceCategory string `json:"referenceCategory"`
		ReferenceType     string `json:"referenceType"`
		ReferenceLocator  string `json:"referenceLocator"`
	}
	spdxRelationship struct {
		SPDXElementID      string `json:"spdxElementId"`
		RelationshipType   string `json:"relationshipType"`
		RelatedSPDXElement string `json:"relatedSpdxElement"`
	}
)

const noAssertion = "NOASSERTION"

// SBOMInput describes the bundle an SBOM is written for.
type SBOMInput struct {
	// BundleName is the bundle's file name, BundleSHA256 its digest.
	BundleName   string
	BundleSHA256 string
	Prefix       string
	// SourceDateEpoch is the document's creation time (seconds).
	SourceDateEpoch int64
	Packages        []Result
}

// SBOM returns the SPDX 2.3 JSON document of a bundle: the bundle itself
// (described by the document), one SPDX package per package of the bundle
// (version = package id, checksum = tarball sha256, contained by the bundle,
// depending on its requirements) and one per source (generated from, with its
// location and digest). Same input, same bytes: everything is sorted and the
// creation time is SourceDateEpoch.
func SBOM(in SBOMInput) ([]byte, error) {
	if len(in.BundleSHA256) != 64 {
		return nil, fmt.Errorf("sbom: bundle digest %q is not a sha256", in.BundleSHA256)
	}
	pkgs := append([]Result(nil), in.Packages...)
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	doc := spdxDocument{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              in.BundleName,
		DocumentNamespace: "https://spdx.imagebuilder.invalid/bundle/sha256-" + in.BundleSHA256,
		CreationInfo: spdxCreationInfo{
			Created:  time.Unix(in.SourceDateEpoch, 0).UTC().Format(time.RFC3339),
			Creators: []string{"Tool: " + BuilderVersion},
		},
	}
	rel := func(a, typ, b string) {
		doc.Relationships = append(doc.Relationships, spdxRelationship{a, typ, b})
	}
	const bundleID = "SPDXRef-Bundle"
	doc.Packages = append(doc.Packages, spdxPackage{
		SPDXID:                bundleID,
		Name:                  in.BundleName,
		VersionInfo:           "sha256:" + in.BundleSHA256,
		PackageFileName:       in.BundleName,
		DownloadLocation:      noAssertion,
		Checksums:             []spdxChecksum{{"SHA256", in.BundleSHA256}},
		LicenseConcluded:      noAssertion,
		LicenseDeclared:       noAssertion,
		CopyrightText:         noAssertion,
		SourceInfo:            "installed by extracting at " + in.Prefix,
		PrimaryPackagePurpose: "ARCHIVE",
	})
	rel("SPDXRef-DOCUMENT", "DESCRIBES", bundleID)
	names := map[string]bool{}
	for _, p := range pkgs {
		if p.Metadata == nil {
			return nil, fmt.Errorf("sbom: package %s has no metadata", p.Name)
		}
		names[p.Name] = true
	}
	for _, p := range pkgs {
		pid := "SPDXRef-Package-" + p.Name
		doc.Packages = append(doc.Packages, spdxPackage{
			SPDXID:                pid,
			Name:                  p.Name,
			VersionInfo:           p.ID,
			PackageFileName:       "packages/" + p.ID,
			DownloadLocation:      noAssertion,
			Checksums:             []spdxChecksum{{"SHA256", p.SHA256}},
			LicenseConcluded:      noAssertion,
			LicenseDeclared:       noAssertion,
			CopyrightText:         noAssertion,
			SourceInfo:            "built by " + p.Metadata.BuilderVersion + " from packages/" + p.Name,
			PrimaryPackagePurpose: "INSTALL",
		})
		rel(bundleID, "CONTAINS", pid)
		for _, r := range sortedKeys(p.Metadata.Requires) {
			if !names[r] {
				return nil, fmt.Errorf("sbom: package %s requires %s, which is not in the bundle", p.Name, r)
			}
			rel(pid, "DEPENDS_ON", "SPDXRef-Package-"+r)
		}
		for i, sn := range sortedKeys(p.Metadata.Sources) {
			sp := spdxSource(p.Name, sn, p.Metadata.Sources[sn])
			sp.SPDXID = fmt.Sprintf("SPDXRef-Source-%s-%d", p.Name, i)
			doc.Packages = append(doc.Packages, sp)
			rel(pid, "GENERATED_FROM", sp.SPDXID)
		}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	return append(b, '\n'), nil
}

// spdxSource describes one source of a package.
func spdxSource(pkg, name string, s SourceDigest) spdxPackage {
	sp := spdxPackage{
		Name:                  pkg + "/" + name,
		DownloadLocation:      noAssertion,
		LicenseConcluded:      noAssertion,
		LicenseDeclared:       noAssertion,
		CopyrightText:         noAssertion,
		PrimaryPackagePurpose: "SOURCE",
	}
	switch s.Kind {
	case KindURL, KindURLExtract:
		sp.DownloadLocation = s.URL
		sp.Checksums = []spdxChecksum{{"SHA256", s.Digest}}
		sp.SourceInfo = "source " + name + " of kind " + s.Kind + ", sha256 " + s.Digest
	case KindGit:
		loc := s.URL
		if !strings.Contains(loc, "://") {
			loc = "file://" + loc
		}
		sp.DownloadLocation = "git+" + loc + "@" + s.Digest
		sp.VersionInfo = s.Digest
		sp.Checksums = []spdxChecksum{{"SHA1", s.Digest}}
		sp.SourceInfo = "source " + name + " of kind git, commit " + s.Digest
	case KindGoModule:
		module, version, _ := strings.Cut(s.URL, "@")
		sp.Name = module
		sp.VersionInfo = version
		sp.ExternalRefs = []spdxExternalRef{{"PACKAGE-MANAGER", "purl", "pkg:golang/" + module + "@" + version}}
		sp.SourceInfo = "source " + name + " of package " + pkg + ", kind go_module " + s.URL + ", every module pinned by go.sum; go.sum and module digest sha256 " + s.Digest
	default: // dir
		sp.SourceInfo = "source " + name + " of kind " + s.Kind + " in the repository, tree digest sha256 " + s.Digest
	}
	return sp
}
