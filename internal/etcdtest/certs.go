package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
)

// zapNop keeps the v3 client's own logging out of test output.
func zapNop() *zap.Logger { return zap.NewNop() }

// writeCerts makes a throw-away CA, a server certificate for 127.0.0.1 and a
// client certificate, writes them under dir and returns the client-side files
// and the etcd flags that serve TLS and require client certificates.
func writeCerts(t testing.TB, dir string) (caFile, certFile, keyFile string, args []string) {
	t.Helper()
	now := time.Now()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "etcdtest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("etcdtest: CA: %v", err)
	}
	ca, _ := x509.ParseCertificate(caDER)

	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			DNSNames:     []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatalf("etcdtest: certificate %s: %v", name, err)
		}
		return der, k
	}
	srvDER, srvKey := leaf(2, "etcdtest server", x509.ExtKeyUsageServerAuth)
	cliDER, cliKey := leaf(3, "etcdtest client", x509.ExtKeyUsageClientAuth)

	caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	srvCert := writePEM(t, dir, "server.pem", "CERTIFICATE", srvDER)
	srvKeyFile := writePEM(t, dir, "server-key.pem", "EC PRIVATE KEY", marshalKey(t, srvKey))
	certFile = writePEM(t, dir, "client.pem", "CERTIFICATE", cliDER)
	keyFile = writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", marshalKey(t, cliKey))
	return caFile, certFile, keyFile, []string{
		"--cert-file", srvCert,
		"--key-file", srvKeyFile,
		"--trusted-ca-file", caFile,
		"--client-cert-auth",
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("etcdtest: key: %v", err)
	}
	return k
}

func marshalKey(t testing.TB, k *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatalf("etcdtest: key: %v", err)
	}
	return b
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	return p
}
