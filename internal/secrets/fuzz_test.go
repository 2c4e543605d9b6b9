package secrets

import (
	"bytes"
	"testing"
)

// FuzzOpen: no stored value makes Open panic, and only what Seal made for
// the same place opens.
func FuzzOpen(f *testing.F) {
	k, err := NewKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := k.Seal([]byte("a key"), []byte("aad"))
	for _, s := range []string{good, "", "plk1:", "plk1:" + k.ID() + ":", "plk1:" + k.ID() + ":AAAA", "plain", good[:len(good)-2]} {
		f.Add(s, "aad")
	}
	f.Fuzz(func(t *testing.T, value, aad string) {
		plain, sealed, err := k.Open(value, []byte(aad))
		if !sealed {
			if err != nil || string(plain) != value {
				t.Fatalf("an unsealed value must come back as is: %q %v", plain, err)
			}
			return
		}
		// Only what Seal made under this key opens: the seeds' sealed value
		// (made by whichever process built the corpus: its nonce differs,
		// its key does not), for its own aad.
		if err == nil && (aad != "aad" || string(plain) != "a key") {
			t.Fatalf("%q opened for aad %q as %q", value, aad, plain)
		}
	})
}
