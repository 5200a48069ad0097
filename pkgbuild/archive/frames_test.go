package archive

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand"
	"os/exec"
	"testing"
)

// framedFile is one member of the framed test archive.
type framedFile struct {
	name string
	size int
}

// framedMembers covers small files (compressed together with the headers),
// big ones with and without tar padding, and one spanning several chunks.
var framedMembers = []framedFile{
	{"a-small", 100},
	{"b-big-padded", FramedFileSize + 1000},
	{"c-empty", 0},
	{"d-big-aligned", 2 * FramedFileSize},
	{"e-small", FramedFileSize - 1},
	{"f-huge", ChunkSize + ChunkSize/2 + 7},
}

func framedContent(i, size int) []byte {
	rng := rand.New(rand.NewSource(int64(i)))
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(rng.Intn(4)) + byte(j/1000%8)
	}
	return b
}

// writeFramed writes framedMembers with a framed Writer at the default level.
func writeFramed(t *testing.T) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := NewParallelCompressorDefault(&out)
	if err != nil {
		t.Fatal(err)
	}
	w := NewFramedWriter(zw, 0)
	for i, m := range framedMembers {
		if err := w.Add(Entry{Name: m.name, Type: TypeFile, Mode: 0o644, Size: int64(m.size)}, bytes.NewReader(framedContent(i, m.size))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

type framedEntry struct {
	off, size int64
	sum       [32]byte
}

// readFramed reads a framed archive and returns its entries and frames.
func readFramed(t *testing.T, fr *FramedReader) ([]framedEntry, []Frame) {
	t.Helper()
	defer fr.Close()
	rd := NewReader(fr, Policy{})
	var ents []framedEntry
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		fe := framedEntry{off: fr.Offset(), size: e.Size}
		b, err := io.ReadAll(rd)
		if err != nil {
			t.Fatal(err)
		}
		fe.sum = sha256.Sum256(b)
		ents = append(ents, fe)
	}
	if _, err := io.Copy(io.Discard, fr); err != nil {
		t.Fatal(err)
	}
	return ents, fr.Frames()
}

// TestFramedWriterAndReader: a framed archive gives every big file's padded
// content frames of its own, the reader finds them from a stream and from
// memory alike, and the zstd command decodes the stream.
func TestFramedWriterAndReader(t *testing.T) {
	data := writeFramed(t)
	ents, frames := readFramed(t, NewFramedReader(bytes.NewReader(data)))
	ents2, frames2 := readFramed(t, NewFramedReaderBytes(data))
	if len(ents) != len(framedMembers) || len(frames) != len(frames2) {
		t.Fatalf("%d entries (want %d), %d and %d frames", len(ents), len(framedMembers), len(frames), len(frames2))
	}
	starts, ends := map[int64]bool{}, map[int64]bool{}
	var raw int64
	for i, f := range frames {
		if f != frames2[i] {
			t.Fatalf("frame %d: %+v from a stream, %+v from memory", i, f, frames2[i])
		}
		if f.RawOff != raw {
			t.Fatalf("frame %d starts at %d, want %d", i, f.RawOff, raw)
		}
		raw += f.RawLen
		starts[f.Off], ends[f.Off+f.Len] = true, true
	}
	if raw != int64(len(data)) {
		t.Fatalf("frames cover %d of %d bytes", raw, len(data))
	}
	for i, m := range framedMembers {
		e := ents[i]
		if e != ents2[i] || e.sum != sha256.Sum256(framedContent(i, m.size)) {
			t.Fatalf("%s: read back wrong", m.name)
		}
		end := e.off + (e.size+511)/512*512
		own := starts[e.off] && ends[end]
		if want := m.size >= FramedFileSize; own != want {
			t.Errorf("%s (%d bytes): content in frames of its own %v, want %v", m.name, m.size, own, want)
		}
	}
	if _, _, ok := (&FramedReader{streamRaw: -1}).Streamed(); ok {
		t.Fatal("Streamed of a fresh reader")
	}
	zstdBin, err := exec.LookPath("zstd")
	if err != nil {
		t.Fatal("zstd not found (apt-get install zstd)")
	}
	cmd := exec.Command(zstdBin, "-d", "-c")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd -d: %v", err)
	}
	dec, err := NewDecompressor(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	back, err := io.ReadAll(dec)
	if err != nil || !bytes.Equal(back, out) {
		t.Fatalf("zstd -d and this package's decoder disagree: %v", err)
	}
}

// TestFramedReaderStreams: a stream without content sizes in its frame
// headers (the streaming encoder's) is read as a stream, with no frames.
func TestFramedReaderStreams(t *testing.T) {
	content := framedContent(1, 3*FramedFileSize)
	var buf bytes.Buffer
	zw, err := NewCompressor(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(zw, 0)
	if err := w.Add(Entry{Name: "f", Type: TypeFile, Mode: 0o644, Size: int64(len(content))}, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	zw.Close()
	for _, fr := range []*FramedReader{NewFramedReader(bytes.NewReader(buf.Bytes())), NewFramedReaderBytes(buf.Bytes())} {
		ents, frames := readFramed(t, fr)
		raw, off, ok := fr.Streamed()
		if len(ents) != 1 || ents[0].sum != sha256.Sum256(content) || len(frames) != 0 || !ok || raw != 0 || off != 0 {
			t.Fatalf("%d entries, %d frames, streamed %v at %d/%d", len(ents), len(frames), ok, raw, off)
		}
	}
}

// TestFramedReaderRefusesDamage: every truncation and a flipped byte in each
// frame fail with an error (never a hang, a panic or silent success).
func TestFramedReaderRefusesDamage(t *testing.T) {
	data := writeFramed(t)
	_, frames := readFramed(t, NewFramedReaderBytes(data))
	read := func(b []byte, fromMemory bool) error {
		fr := NewFramedReaderBytes(b)
		if !fromMemory {
			fr = NewFramedReader(bytes.NewReader(b))
		}
		defer fr.Close()
		_, err := io.Copy(io.Discard, fr)
		return err
	}
	for _, f := range frames {
		for _, cut := range []int64{f.RawOff + 1, f.RawOff + 5, f.RawOff + f.RawLen/2, f.RawOff + f.RawLen - 1} {
			for _, mem := range []bool{false, true} {
				if err := read(data[:cut], mem); err == nil {
					t.Fatalf("cut at %d (frame at %d, memory %v): no error", cut, f.RawOff, mem)
				}
			}
		}
		bad := bytes.Clone(data)
		bad[f.RawOff+f.RawLen-2] ^= 0x55 // the checksum, or the last block
		for _, mem := range []bool{false, true} {
			if err := read(bad, mem); err == nil {
				t.Fatalf("flipped byte in frame at %d (memory %v): no error", f.RawOff, mem)
			}
		}
	}
}

// TestAddFrames: a big file's frames copied from one framed archive into
// another decode to the same entries as writing the content again.
func TestAddFrames(t *testing.T) {
	data := writeFramed(t)
	fr := NewFramedReaderBytes(data)
	ents, frames := readFramed(t, fr)
	build := func(copyFrames bool) []byte {
		var out bytes.Buffer
		zw, err := NewParallelCompressor(&out)
		if err != nil {
			t.Fatal(err)
		}
		w := NewFramedWriter(zw, 7)
		if err := w.Add(Entry{Name: "d", Type: TypeDir, Mode: 0o755}, nil); err != nil {
			t.Fatal(err)
		}
		for i, m := range framedMembers {
			e := Entry{Name: "d/" + m.name, Type: TypeFile, Mode: 0o600, Size: int64(m.size)}
			end := ents[i].off + (ents[i].size+511)/512*512
			first, last := -1, -1
			for j, f := range frames {
				if f.Off == ents[i].off && first < 0 {
					first = j
				}
				if f.Off+f.Len == end {
					last = j
				}
			}
			if copyFrames && m.size >= FramedFileSize {
				err = w.AddFrames(e, func(fw FrameWriter) error {
					for _, f := range frames[first : last+1] {
						if err := fw.WriteFrames(data[f.RawOff : f.RawOff+f.RawLen]); err != nil {
							return err
						}
					}
					return nil
				})
			} else {
				err = w.Add(e, bytes.NewReader(framedContent(i, m.size)))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	decode := func(b []byte) []byte {
		r, err := NewDecompressor(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	copied, written := build(true), build(false)
	if !bytes.Equal(decode(copied), decode(written)) {
		t.Fatal("copied frames decode to another tar stream than written content")
	}
	if bytes.Equal(copied, written) {
		t.Fatal("no frame was copied (default-level frames should differ from fastest)")
	}
	big := frames[len(frames)-1]
	if !bytes.Contains(copied, data[big.RawOff:big.RawOff+big.RawLen]) {
		t.Fatal("the copy does not hold the source's last frame as it is")
	}
	var out bytes.Buffer
	zw, _ := NewParallelCompressor(&out)
	if err := NewWriter(zw, 0).AddFrames(Entry{Name: "x", Type: TypeFile, Size: 1}, func(FrameWriter) error { return nil }); err == nil {
		t.Fatal("AddFrames on an unframed writer")
	}
	zw.Close()
}

// FuzzFramedReader gives the framed reader arbitrary compressed bytes: it
// must not panic or hang, reading from a stream and from memory must agree,
// and what it accepts must be what the plain decoder gives.
func FuzzFramedReader(f *testing.F) {
	var framed bytes.Buffer
	zw, _ := NewParallelCompressorDefault(&framed)
	w := NewFramedWriter(zw, 0)
	w.Add(Entry{Name: "big", Type: TypeFile, Mode: 0o644, Size: FramedFileSize}, bytes.NewReader(framedContent(1, FramedFileSize)))
	w.Add(Entry{Name: "small", Type: TypeFile, Mode: 0o644, Size: 3}, bytes.NewReader([]byte("abc")))
	w.Close()
	zw.Close()
	f.Add(framed.Bytes())
	var streamed bytes.Buffer
	sw, _ := NewCompressor(&streamed)
	sw.Write([]byte("hello, streamed"))
	sw.Close()
	f.Add(streamed.Bytes())
	f.Add(append(bytes.Clone(framed.Bytes()), streamed.Bytes()...))
	f.Fuzz(func(t *testing.T, data []byte) {
		read := func(fr *FramedReader) ([]byte, []Frame, error) {
			defer fr.Close()
			out, err := io.ReadAll(fr)
			return out, fr.Frames(), err
		}
		a, fa, errA := read(NewFramedReader(bytes.NewReader(data)))
		b, fb, errB := read(NewFramedReaderBytes(data))
		if (errA == nil) != (errB == nil) || !bytes.Equal(a, b) || len(fa) != len(fb) {
			t.Fatalf("stream and memory disagree: %v / %v, %d / %d bytes, %d / %d frames", errA, errB, len(a), len(b), len(fa), len(fb))
		}
		if errA != nil {
			return
		}
		dec, err := NewDecompressor(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		want, err := io.ReadAll(dec)
		if err != nil {
			t.Fatalf("framed reader accepted what the decoder refuses: %v", err)
		}
		if !bytes.Equal(a, want) {
			t.Fatalf("framed reader gives %d bytes, the decoder %d", len(a), len(want))
		}
		var off int64
		for _, fr := range fa {
			if fr.Off != off {
				t.Fatalf("frame at %d, want %d", fr.Off, off)
			}
			off += fr.Len
		}
	})
}
