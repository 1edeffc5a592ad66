package decrypt

import (
	"errors"
	"strings"
	"testing"

	"filippo.io/age"
)

const secret = `apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: correct-horse-battery-staple
`

func TestRoundTrip(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	enc, err := YAMLEncrypt([]byte(secret), id.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(enc), "correct-horse") {
		t.Fatal("plaintext in the encrypted file")
	}
	if !strings.Contains(string(enc), "name: db") {
		t.Error("metadata should stay readable (only data and stringData are encrypted)")
	}
	ids, err := Identities("# created by age-keygen\n" + id.String() + "\n")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := YAML(enc, ids)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(plain), "password: correct-horse-battery-staple") || strings.Contains(string(plain), "sops:") {
		t.Errorf("decrypted:\n%s", plain)
	}

	wrong, _ := Identities(other.String())
	if _, err := YAML(enc, wrong); !errors.Is(err, ErrNoKey) {
		t.Errorf("wrong key: %v, want ErrNoKey", err)
	}
	if _, err := YAML(enc, nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("no key: %v, want ErrNoKey", err)
	}
	tampered := strings.Replace(string(enc), "name: db", "name: dbx", 1)
	_, err = YAML([]byte(tampered), ids)
	if err == nil || !strings.Contains(err.Error(), "MAC mismatch") {
		t.Errorf("tampered file: %v, want a MAC mismatch", err)
	}
	if err != nil && strings.Contains(err.Error(), "correct-horse") {
		t.Error("an error carries the plaintext")
	}
}
