package bundle

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"

	"imagebuilder/pkgbuild/archive"
)

// FuzzExtend gives Extend arbitrary (uncompressed, then compressed here) base
// bundles: it must not panic, and whatever it accepts must come out as a valid
// bundle whose manifest can be read back.
func FuzzExtend(f *testing.F) {
	f.Add(rawTarForFuzz(f, d("etc"), fz("etc/x", "1"), fz("manifest.json", `{"version":1,"prefix":"/opt/cluster","config_hash":"","source_date_epoch":0,"packages":[],"entries":[{"path":"etc","type":"dir","mode":"0755","size":0},{"path":"etc/x","type":"file","mode":"0644","size":1,"sha256":"6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"}]}`)))
	f.Add(rawTarForFuzz(f, fz("../x", "evil")))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var zin bytes.Buffer
		zw, err := archive.NewCompressor(&zin)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(raw)
		zw.Close()
		var out bytes.Buffer
		m, err := Extend(&zin, &out, []File{{Path: "etc/cluster.env", Data: []byte("A=1\n")}}, "h")
		if err != nil {
			return
		}
		rm, err := ReadManifest(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("extended bundle has no readable manifest: %v", err)
		}
		if rm.ConfigHash != "h" || len(rm.Entries) != len(m.Entries) {
			t.Fatalf("manifest read back differs")
		}
		zr, err := archive.NewDecompressor(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r := archive.NewReader(zr, archive.Policy{Prefix: rm.Prefix, Scope: bundleScope})
		for {
			_, err := r.Next()
			if err != nil {
				if err != io.EOF {
					t.Fatalf("extended bundle does not validate: %v", err)
				}
				break
			}
		}
	})
}

func fz(name, data string) pf { return f(name, data) }

func rawTarForFuzz(tb testing.TB, members ...pf) []byte {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, m := range members {
		hdr := &tar.Header{Typeflag: m.typ, Name: m.name, Linkname: m.link, Mode: m.mode}
		if m.typ == tar.TypeReg {
			hdr.Size = int64(len(m.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatal(err)
		}
		io.WriteString(tw, m.data)
	}
	tw.Close()
	return raw.Bytes()
}
