package genconf

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse: any config bytes give a config or a Report whose problems all
// name a field and carry a hint; never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("cluster_name: demo\nmaster_list: [10.0.0.1]\n"))
	f.Add([]byte("secrets: {join_token: {file: x}}\ntemplate_vars: {a: b}\n"))
	f.Add([]byte("master_list: {a: 1}\ndns_search: [a.b]\n"))
	src := memSources(map[string]string{"/c/ip-detect": "#!/bin/sh\necho 10.0.0.1\n"}, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("/c/config.yaml", data, src)
		if err == nil {
			return
		}
		var rep *Report
		if !errors.As(err, &rep) {
			t.Fatalf("not a Report: %v", err)
		}
		for _, p := range rep.Problems {
			if p.Field == "" || p.Hint == "" {
				t.Errorf("problem without field or hint: %+v", p)
			}
		}
	})
}

// FuzzSecretNeverEchoed: whatever the secret's text, the report never shows it.
func FuzzSecretNeverEchoed(f *testing.F) {
	for _, s := range []string{"short", "has\"quote-0123456789", "ok-0123456789abcdef", "a$b`c\\d-0123456789"} {
		f.Add(s)
	}
	src := memSources(map[string]string{"/c/ip-detect": "#!/bin/sh\n"}, nil)
	f.Fuzz(func(t *testing.T, secret string) {
		// A marker no report word contains, so finding it means an echo.
		secret = "ZQXJ" + secret
		yaml := "cluster_name: Bad_Name\nmaster_list: [10.0.0.1]\nsecrets:\n  join_token: " + strconv.Quote(secret) + "\n"
		_, err := Parse("/c/config.yaml", []byte(yaml), src)
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Fatalf("the report shows the secret %q:\n%v", secret, err)
		}
	})
}
