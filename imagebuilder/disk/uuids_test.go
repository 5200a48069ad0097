package disk

import (
	"regexp"
	"testing"
)

func TestPlanUUIDs(t *testing.T) {
	a, b := PlanUUIDs("seed-a"), PlanUUIDs("seed-a")
	if a != b {
		t.Fatalf("same seed, different UUIDs:\n%+v\n%+v", a, b)
	}
	c := PlanUUIDs("seed-b")
	uuidRe := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]string{}
	for _, tc := range []struct{ name, a, c string }{
		{"Disk", a.Disk, c.Disk},
		{"ESPPart", a.ESPPart, c.ESPPart},
		{"RootPart", a.RootPart, c.RootPart},
		{"RootFS", a.RootFS, c.RootFS},
		{"RootHashSeed", a.RootHashSeed, c.RootHashSeed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !uuidRe.MatchString(tc.a) {
				t.Errorf("%s = %q, not a version 5 UUID", tc.name, tc.a)
			}
			if tc.a == tc.c {
				t.Errorf("%s does not depend on the seed", tc.name)
			}
			if other, dup := seen[tc.a]; dup {
				t.Errorf("%s equals %s", tc.name, other)
			}
			seen[tc.a] = tc.name
		})
	}
	if !regexp.MustCompile(`^[0-9A-F]{4}-[0-9A-F]{4}$`).MatchString(a.ESPVolumeID) {
		t.Errorf("ESPVolumeID = %q", a.ESPVolumeID)
	}
	if a.ESPVolumeID == c.ESPVolumeID {
		t.Errorf("ESPVolumeID does not depend on the seed")
	}
	want := "UUID=" + a.RootFS + " / ext4 defaults,errors=remount-ro 0 1\nUUID=" + a.ESPVolumeID + " /boot/efi vfat umask=0077,nofail 0 2\n"
	if got := a.Fstab("/boot/efi"); got != want {
		t.Errorf("Fstab = %q, want %q", got, want)
	}
}
