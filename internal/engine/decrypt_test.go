package engine

import (
	"strings"
	"testing"

	"filippo.io/age"

	"converge.dev/converge/internal/decrypt"
	"converge.dev/converge/internal/object"
)

// TestDecryptKeepsKeyOrder: a Secret encrypted as `sops --encrypt`
// leaves it, with its keys in the usual, not alphabetical, order
// (apiVersion, kind, metadata, data), decrypts. Before, the document was
// re-marshalled with sorted keys before SOPS read it, and its MAC did not
// match: "the file was changed after it was encrypted".
func TestDecryptKeepsKeyOrder(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	plain := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\ndata:\n  user: YWRtaW4=\n  password: czNjcjN0\n"
	enc, err := decrypt.YAMLEncrypt([]byte(plain), id.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, file string }{
		{"one document", string(enc)},
		{"second of two", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n---\n" + string(enc)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := object.Decode([]byte(tc.file), "secrets/db.yaml")
			if err != nil {
				t.Fatal(err)
			}
			out, err := decryptObjects(objs, &Decryption{AgeKeys: []string{id.String()}})
			if err != nil {
				t.Fatalf("decrypt: %v", err)
			}
			last := out[len(out)-1].Object
			data, _ := last.Object["data"].(map[string]any)
			if data["password"] != "czNjcjN0" || data["user"] != "YWRtaW4=" || last.GetNamespace() != "shop" {
				t.Errorf("decrypted %v", last.Object)
			}
			if last.Object["sops"] != nil {
				t.Error("the sops metadata was kept")
			}
		})
	}
	// A value changed after encryption is still refused.
	objs, err := object.Decode([]byte(strings.Replace(string(enc), "name: db", "name: dc", 1)), "secrets/db.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decryptObjects(objs, &Decryption{AgeKeys: []string{id.String()}}); err == nil || !strings.Contains(err.Error(), "MAC mismatch") {
		t.Errorf("a tampered document: got %v, want a MAC mismatch", err)
	}
}
