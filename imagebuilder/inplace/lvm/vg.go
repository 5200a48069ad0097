package lvm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// VG is a volume group as its metadata describes it. Sizes are in
// 512-byte sectors, as in the metadata.
type VG struct {
	Name, ID   string
	Seqno      int64
	ExtentSize uint64
	PVs        []*PVRef
	LVs        []*LV
}

// PVRef is a physical volume of the group: its name in the metadata
// ("pv0"), its id without dashes, and where its extents start.
type PVRef struct {
	Name, ID         string
	PEStart, PECount uint64
}

// LV is a logical volume.
type LV struct {
	Name     string
	Status   []string
	Segments []Segment
}

// Visible reports whether the LV is a user-visible one (not a hidden
// component of another LV).
func (l *LV) Visible() bool { return slices.Contains(l.Status, "VISIBLE") }

// Segment is one segment of a logical volume.
type Segment struct {
	Name                     string
	StartExtent, ExtentCount uint64
	Type                     string
	// StripeSize is in sectors (striped segments with more than one stripe).
	StripeSize uint64
	Stripes    []Stripe
}

// Stripe is an area of a segment: a PV (by metadata name) and its first
// physical extent.
type Stripe struct {
	PV string
	PE uint64
}

// ParseVG parses a volume group's text metadata (the single top-level
// section). Errors name the section and field.
func ParseVG(text string) (*VG, error) {
	root, err := ParseConfig(text)
	if err != nil {
		return nil, err
	}
	if len(root.Subs) != 1 {
		return nil, fmt.Errorf("metadata holds %d volume groups, want 1", len(root.Subs))
	}
	s := root.Subs[0]
	vg := &VG{Name: s.Name}
	where := "volume group " + s.Name
	if vg.ID, err = s.Str("id"); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	vg.Seqno, _ = s.Int("seqno")
	es, err := s.Int("extent_size")
	if err != nil || es <= 0 {
		return nil, fmt.Errorf("%s: extent_size: %v", where, orInvalid(err, es))
	}
	vg.ExtentSize = uint64(es)
	pvs := s.Sub("physical_volumes")
	if pvs == nil || len(pvs.Subs) == 0 {
		return nil, fmt.Errorf("%s: no physical_volumes", where)
	}
	for _, p := range pvs.Subs {
		ref := &PVRef{Name: p.Name}
		id, err := p.Str("id")
		if err != nil {
			return nil, fmt.Errorf("%s: physical volume %w", where, err)
		}
		ref.ID = strings.ReplaceAll(id, "-", "")
		start, err1 := p.Int("pe_start")
		count, err2 := p.Int("pe_count")
		if err := errors.Join(err1, err2); err != nil || start < 0 || count < 0 {
			return nil, fmt.Errorf("%s: physical volume %s: %v", where, p.Name, orInvalid(err, start))
		}
		ref.PEStart, ref.PECount = uint64(start), uint64(count)
		vg.PVs = append(vg.PVs, ref)
	}
	if lvs := s.Sub("logical_volumes"); lvs != nil {
		for _, l := range lvs.Subs {
			lv, err := parseLV(l)
			if err != nil {
				return nil, fmt.Errorf("%s: logical volume %s: %w", where, l.Name, err)
			}
			vg.LVs = append(vg.LVs, lv)
		}
	}
	return vg, nil
}

func orInvalid(err error, v int64) any {
	if err != nil {
		return err
	}
	return fmt.Sprintf("invalid value %d", v)
}

func parseLV(s *Section) (*LV, error) {
	lv := &LV{Name: s.Name, Status: s.Flags("status")}
	count, err := s.Int("segment_count")
	if err != nil {
		return nil, err
	}
	if count < 1 || count > 1<<16 {
		return nil, fmt.Errorf("segment_count %d", count)
	}
	for i := int64(1); i <= count; i++ {
		name := fmt.Sprintf("segment%d", i)
		ss := s.Sub(name)
		if ss == nil {
			return nil, fmt.Errorf("%s is missing (segment_count %d)", name, count)
		}
		seg := Segment{Name: name}
		start, err1 := ss.Int("start_extent")
		n, err2 := ss.Int("extent_count")
		typ, err3 := ss.Str("type")
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, err
		}
		if start < 0 || n <= 0 {
			return nil, fmt.Errorf("%s: start_extent %d extent_count %d", name, start, n)
		}
		seg.StartExtent, seg.ExtentCount, seg.Type = uint64(start), uint64(n), typ
		if typ == "striped" {
			stripes, ok := ss.Values["stripes"].([]any)
			if !ok || len(stripes) == 0 || len(stripes)%2 != 0 {
				return nil, fmt.Errorf("%s: stripes must be a list of PV name, extent pairs", name)
			}
			for j := 0; j < len(stripes); j += 2 {
				pv, ok1 := stripes[j].(string)
				pe, ok2 := stripes[j+1].(int64)
				if !ok1 || !ok2 || pe < 0 {
					return nil, fmt.Errorf("%s: stripe %d: %v, %v is not a PV name and an extent", name, j/2+1, stripes[j], stripes[j+1])
				}
				seg.Stripes = append(seg.Stripes, Stripe{PV: pv, PE: uint64(pe)})
			}
			if sc, err := ss.Int("stripe_count"); err != nil || int(sc) != len(seg.Stripes) {
				return nil, fmt.Errorf("%s: stripe_count does not match the %d stripes listed", name, len(seg.Stripes))
			}
			if len(seg.Stripes) > 1 {
				size, err := ss.Int("stripe_size")
				if err != nil || size <= 0 {
					return nil, fmt.Errorf("%s: stripe_size: %v", name, orInvalid(err, size))
				}
				seg.StripeSize = uint64(size)
			}
		}
		lv.Segments = append(lv.Segments, seg)
	}
	return lv, nil
}

// LV returns the logical volume called name.
func (vg *VG) LV(name string) *LV {
	for _, l := range vg.LVs {
		if l.Name == name {
			return l
		}
	}
	return nil
}

func (vg *VG) pv(name string) *PVRef {
	for _, p := range vg.PVs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Target is one line of a device-mapper table, in sectors.
type Target struct {
	Start, Length uint64
	Type, Params  string
}

// ErrUnsupported marks a logical volume whose segments are not linear or
// striped (raid, mirror, thin, cache, snapshot, vdo...).
var ErrUnsupported = errors.New("unsupported segment type")

// Table returns the device-mapper table of logical volume name. dev maps a
// PV id (no dashes) to the "major:minor" of the device holding it. Every
// segment must be linear or striped, the segments must cover the LV in
// order, and every extent must lie inside its PV.
func (vg *VG) Table(name string, dev func(pvID string) (string, error)) ([]Target, error) {
	lv := vg.LV(name)
	where := fmt.Sprintf("logical volume %s/%s", vg.Name, name)
	if lv == nil {
		return nil, fmt.Errorf("%s: no such logical volume (the group has %s)", where, strings.Join(vg.lvNames(), ", "))
	}
	var out []Target
	var next uint64
	for _, seg := range lv.Segments {
		if seg.Type != "striped" {
			return nil, fmt.Errorf("%s: %s: type %q: %w (linear and striped only)", where, seg.Name, seg.Type, ErrUnsupported)
		}
		if seg.StartExtent != next {
			return nil, fmt.Errorf("%s: %s starts at extent %d, want %d (segments must follow each other)", where, seg.Name, seg.StartExtent, next)
		}
		next += seg.ExtentCount
		n := uint64(len(seg.Stripes))
		if seg.ExtentCount%n != 0 {
			return nil, fmt.Errorf("%s: %s: %d extents do not divide into %d stripes", where, seg.Name, seg.ExtentCount, n)
		}
		perStripe := seg.ExtentCount / n
		var params []string
		for i, st := range seg.Stripes {
			pv := vg.pv(st.PV)
			if pv == nil {
				return nil, fmt.Errorf("%s: %s: stripe %d names %q, which is not a physical volume of the group", where, seg.Name, i+1, st.PV)
			}
			if st.PE+perStripe > pv.PECount {
				return nil, fmt.Errorf("%s: %s: extents %d-%d are past the end of %s (%d extents)", where, seg.Name, st.PE, st.PE+perStripe-1, st.PV, pv.PECount)
			}
			d, err := dev(pv.ID)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", where, seg.Name, err)
			}
			params = append(params, fmt.Sprintf("%s %d", d, pv.PEStart+st.PE*vg.ExtentSize))
		}
		t := Target{Start: seg.StartExtent * vg.ExtentSize, Length: seg.ExtentCount * vg.ExtentSize, Type: "linear", Params: params[0]}
		if n > 1 {
			t.Type = "striped"
			t.Params = fmt.Sprintf("%d %d %s", n, seg.StripeSize, strings.Join(params, " "))
		}
		out = append(out, t)
	}
	return out, nil
}

func (vg *VG) lvNames() []string {
	var out []string
	for _, l := range vg.LVs {
		out = append(out, l.Name)
	}
	return out
}
