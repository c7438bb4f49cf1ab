package origin

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/origin/demo"
)

// TestHTTPSOrigin serves the demo origin over TLS with a throwaway
// certificate for 127.0.0.1 and fetches through the pool, which must
// verify it against the configured roots (and refuse it without them).
func TestHTTPSOrigin(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "edgebox test origin"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	srv := demo.Serve(tln, demo.New(demo.Options{}))
	defer srv.Close()
	url := "https://" + srv.Addr()

	roots := x509.NewCertPool()
	roots.AddCert(cert)
	p, err := NewPool(testConfig(), []config.Site{config.NewSite("s", url)}, Options{TLSConfig: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	status, body, res, err := get(t, p, "s", "GET", "/bytes/5000")
	if err != nil || status != 200 || !bytes.Equal(body, want(5000)) || res.Origin != url {
		t.Fatalf("GET over TLS: %d, %d bytes, %+v, %v", status, len(body), res, err)
	}

	cfg := testConfig()
	cfg.Retries = 0
	untrusting, err := NewPool(cfg, []config.Site{config.NewSite("s", url)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer untrusting.Close()
	if _, _, _, err := get(t, untrusting, "s", "GET", "/bytes/5"); !errors.Is(err, ErrConnect) {
		t.Errorf("GET over TLS with an untrusted certificate: %v, want ErrConnect", err)
	}
}
