package region

import (
	"fmt"
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
)

// asnRecord is the data record of a MaxMind GeoLite2-ASN database (GeoIP2
// ISP databases carry the same two fields).
type asnRecord struct {
	ASN uint32 `maxminddb:"autonomous_system_number"`
	Org string `maxminddb:"autonomous_system_organization"`
}

// readMMDB reads a MaxMind-format ASN database held in data and calls fn for
// every network that carries an autonomous_system_number, once per network
// (IPv4 aliases inside IPv6 databases are skipped). file names the database
// in errors. A corrupt database is an error; the caller must then discard
// what fn received.
func readMMDB(data []byte, file string, fn func(netip.Prefix, uint32, string)) (err error) {
	db, err := maxminddb.OpenBytes(data)
	if err != nil {
		return fmt.Errorf("%s: not a MaxMind DB: %w", file, err)
	}
	defer db.Close()
	// Networks share data records; decode each record once.
	decoded := map[uintptr]asnRecord{}
	networks := 0
	for res := range db.Networks() {
		if err := res.Err(); err != nil {
			return fmt.Errorf("%s: reading network %s: %w", file, res.Prefix(), err)
		}
		rec, ok := decoded[res.Offset()]
		if !ok {
			if err := res.Decode(&rec); err != nil {
				return fmt.Errorf("%s: decoding record of %s: %w", file, res.Prefix(), err)
			}
			decoded[res.Offset()] = rec
		}
		if rec.ASN == 0 {
			continue
		}
		pfx := res.Prefix()
		if a := pfx.Addr(); a.Is4In6() {
			if pfx.Bits() < 96 {
				continue // an IPv6 network that merely contains ::ffff:0:0/96
			}
			pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
		}
		if !pfx.IsValid() {
			return fmt.Errorf("%s: network %s is not a valid prefix", file, res.Prefix())
		}
		networks++
		fn(pfx.Masked(), rec.ASN, rec.Org)
	}
	if networks == 0 {
		return fmt.Errorf("%s: %w: no network has an autonomous_system_number (database type %q; want a GeoLite2-ASN-format database)",
			file, ErrNoRanges, db.Metadata.DatabaseType)
	}
	return nil
}
