package verify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"imagebuilder/imagebuilder/build"
	"imagebuilder/imagebuilder/disk"
)

// checkDisk compares the partition table and every partition's digest with
// the manifest and, when the root partition drifted, the cluster payload.
func checkDisk(ctx context.Context, r *Report, p, format string, m *build.Result, o Options) error {
	raw := p
	if format != "raw" {
		tmp, err := os.MkdirTemp(o.TempDir, "imagebuilder-verify-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		raw = filepath.Join(tmp, "disk.raw")
		in := map[string]string{"qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc"}[format]
		if _, _, err := o.Tools.Runner.Run(ctx, disk.Cmd{Tool: o.Tools.QemuImg, Args: []string{"convert", "-q", "-f", in, "-O", "raw", p, raw}}); err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
	}
	fi, err := os.Stat(raw)
	if err != nil {
		return err
	}
	if fi.Size() != m.Disk.SizeBytes {
		r.add("disk size", false, "%d bytes, the manifest says %d", fi.Size(), m.Disk.SizeBytes)
	} else {
		r.add("disk size", true, "%d bytes", fi.Size())
	}
	if problems := comparePartitionTable(raw, m.Disk); len(problems) > 0 {
		r.add("partition table", false, "%s", strings.Join(problems, "; "))
	} else {
		r.add("partition table", true, "%d partitions as built", len(m.Disk.Partitions))
	}
	rootDrift := false
	for _, part := range m.Disk.Partitions {
		name := fmt.Sprintf("partition %d (%s)", part.Number, part.Name)
		if part.StartBytes+part.SizeBytes > fi.Size() {
			r.add(name, false, "lies beyond the end of the disk")
			continue
		}
		sum, err := build.HashRange(raw, part.StartBytes, part.SizeBytes)
		if err != nil {
			return err
		}
		if sum != part.SHA256 {
			r.add(name, false, "content differs: sha256 %s, built %s", sum, part.SHA256)
			rootDrift = rootDrift || part.Name == "root"
		} else {
			r.add(name, true, "%s", sum)
		}
	}
	if rootDrift {
		for _, part := range m.Disk.Partitions {
			if part.Name == "root" {
				return checkDiskPayload(ctx, r, raw, part.StartBytes, m, o)
			}
		}
	}
	return nil
}

// comparePartitionTable lists how the disk's GPT differs from the layout.
func comparePartitionTable(raw string, l *build.DiskLayout) []string {
	d, err := diskfs.Open(raw, diskfs.WithOpenMode(diskfs.ReadOnly), diskfs.WithSectorSize(diskfs.SectorSize512))
	if err != nil {
		return []string{fmt.Sprintf("cannot open the disk: %v", err)}
	}
	defer d.Close()
	pt, err := d.GetPartitionTable()
	if err != nil {
		return []string{fmt.Sprintf("no readable partition table: %v", err)}
	}
	t, ok := pt.(*gpt.Table)
	if !ok {
		return []string{"the partition table is not GPT"}
	}
	var problems []string
	if !strings.EqualFold(t.GUID, l.GUID) {
		problems = append(problems, fmt.Sprintf("disk GUID %s, built %s", t.GUID, l.GUID))
	}
	found := 0
	for i, p := range t.Partitions {
		if p == nil || p.Type == gpt.Unused {
			continue
		}
		found++
		n := i + 1
		var want *build.PartitionInfo
		for j := range l.Partitions {
			if l.Partitions[j].Number == n {
				want = &l.Partitions[j]
			}
		}
		if want == nil {
			problems = append(problems, fmt.Sprintf("partition %d (%s) was not built", n, p.Name))
			continue
		}
		start, size := int64(p.Start)*512, int64(p.End-p.Start+1)*512
		if !strings.EqualFold(string(p.Type), want.Type) {
			problems = append(problems, fmt.Sprintf("partition %d type %s, built %s", n, p.Type, want.Type))
		}
		if !strings.EqualFold(p.GUID, want.GUID) {
			problems = append(problems, fmt.Sprintf("partition %d GUID %s, built %s", n, p.GUID, want.GUID))
		}
		if start != want.StartBytes || size != want.SizeBytes {
			problems = append(problems, fmt.Sprintf("partition %d at %d+%d bytes, built at %d+%d", n, start, size, want.StartBytes, want.SizeBytes))
		}
	}
	if found != len(l.Partitions) {
		problems = append(problems, fmt.Sprintf("%d partitions, built %d", found, len(l.Partitions)))
	}
	return problems
}
