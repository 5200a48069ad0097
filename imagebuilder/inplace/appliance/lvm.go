package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"imagebuilder/imagebuilder/inplace/lvm"
)

// foundPV is an LVM2 physical volume on a partition.
type foundPV struct {
	dev, majMin string
	pv          *lvm.PV
}

func readPV(dev string) (foundPV, error) {
	f, err := os.Open("/dev/" + dev)
	if err != nil {
		return foundPV{}, err
	}
	defer f.Close()
	pv, err := lvm.ReadPV(f)
	if err != nil {
		return foundPV{}, err
	}
	mm, err := os.ReadFile("/sys/class/block/" + dev + "/dev")
	if err != nil {
		return foundPV{}, fmt.Errorf("device number: %w", err)
	}
	fmt.Printf("appliance: LVM2 physical volume %s on /dev/%s\n", pv.UUID, dev)
	return foundPV{dev: dev, majMin: strings.TrimSpace(string(mm)), pv: pv}, nil
}

// activateLVs reads the volume groups of the physical volumes found, maps
// each visible logical volume with device-mapper (linear and striped
// segments) and keeps those holding an os-release as candidates. want,
// when it names a logical volume (VG/LV), limits the work to it and makes
// its problems errors; other logical volumes that cannot be mapped are
// reported as notes. The returned candidates stay mapped.
func activateLVs(pvs []foundPV, want string) ([]candidate, []string, error) {
	if len(pvs) == 0 {
		return nil, nil, nil
	}
	byID := map[string]foundPV{}
	for _, p := range pvs {
		if other, dup := byID[p.pv.UUID]; dup {
			return nil, nil, fmt.Errorf("LVM physical volume %s is on both /dev/%s and /dev/%s", p.pv.UUID, other.dev, p.dev)
		}
		byID[p.pv.UUID] = p
	}
	// The newest metadata (highest seqno) of each group.
	groups := map[string]*lvm.VG{}
	var order []string
	for _, p := range pvs {
		if p.pv.Text == "" {
			continue
		}
		vg, err := lvm.ParseVG(p.pv.Text)
		if err != nil {
			return nil, nil, fmt.Errorf("LVM metadata on /dev/%s: %w", p.dev, err)
		}
		old, seen := groups[vg.ID]
		if !seen {
			order = append(order, vg.ID)
		}
		if !seen || vg.Seqno > old.Seqno {
			groups[vg.ID] = vg
		}
	}
	if len(groups) == 0 {
		return nil, nil, errors.New("LVM physical volumes found but none carries volume group metadata")
	}
	devOf := func(vg *lvm.VG) func(string) (string, error) {
		return func(id string) (string, error) {
			p, ok := byID[id]
			if !ok {
				return "", fmt.Errorf("physical volume %s of volume group %s is not on the disk", id, vg.Name)
			}
			return p.majMin, nil
		}
	}
	var cands []candidate
	var notes []string
	fail := func(err error) ([]candidate, []string, error) {
		for _, c := range cands {
			dmRemove(c.dm)
		}
		return nil, nil, err
	}
	wantLV := strings.Contains(want, "/")
	for _, id := range order {
		vg := groups[id]
		for _, lv := range vg.LVs {
			name := vg.Name + "/" + lv.Name
			if wantLV && name != want {
				continue
			}
			if !lv.Visible() && !wantLV {
				continue
			}
			table, err := vg.Table(lv.Name, devOf(vg))
			if err != nil {
				if wantLV {
					return fail(err)
				}
				notes = append(notes, name+" ("+err.Error()+")")
				continue
			}
			dm := "ib-" + vg.Name + "-" + lv.Name
			node, err := dmCreate(dm, table)
			if err != nil {
				return fail(fmt.Errorf("logical volume %s: %w", name, err))
			}
			fmt.Printf("appliance: LVM %s mapped: %d segment(s), %d sectors\n", name, len(table), table[len(table)-1].Start+table[len(table)-1].Length)
			c, why := probe(node, name)
			if why != "" {
				notes = append(notes, why)
				dmRemove(dm)
				continue
			}
			c.dm = dm
			if c.ranges, err = lvRanges(table, pvs); err != nil {
				dmRemove(dm)
				return fail(fmt.Errorf("logical volume %s: %w", name, err))
			}
			cands = append(cands, c)
		}
	}
	return cands, notes, nil
}

// lvRanges turns a linear table into byte ranges of /dev/vda (nil when a
// segment is striped).
func lvRanges(table []lvm.Target, pvs []foundPV) ([][2]uint64, error) {
	var out [][2]uint64
	for _, t := range table {
		if t.Type != "linear" {
			return nil, nil
		}
		var mm string
		var off uint64
		if _, err := fmt.Sscanf(t.Params, "%s %d", &mm, &off); err != nil {
			return nil, fmt.Errorf("table line %q: %w", t.Params, err)
		}
		found := false
		for _, p := range pvs {
			if p.majMin == mm {
				start, _, err := partRange(p.dev)
				if err != nil {
					return nil, err
				}
				out = append(out, [2]uint64{start + off*512, t.Length * 512})
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("table line %q: no such physical volume", t.Params)
		}
	}
	return out, nil
}
