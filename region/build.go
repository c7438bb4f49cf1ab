package region

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gaissmai/bart"

	"github.com/peerassist/edgebox/config"
)

// maxOwners bounds the distinct (region, ISP, ASN, source) combinations: a
// table value packs the owner index above the 8 bits of prefix length.
const maxOwners = 1 << 24

// owner is what a table prefix maps to. Many prefixes share one owner.
type owner struct {
	region, isp, source string
	asn                 uint32
	// layer is the precedence of the source: 0..len(Sources)-1 for the
	// databases in order, len(Sources) for config prefixes.
	layer                    int
	subnetBits4, subnetBits6 uint8
}

// table is one immutable snapshot of everything a lookup needs. It is built
// completely, then published with an atomic pointer swap, so a lookup sees
// either the old or the new table, never a mix. Safe for concurrent reads.
type table struct {
	// prefixes maps each prefix to owner index << 8 | prefix bits (bart
	// does not return the matched prefix, and the bits are enough to
	// rebuild it from the address).
	prefixes bart.Table[uint32]
	owners   []owner

	name                     string // region this box serves, "" all
	subnetBits4, subnetBits6 uint8  // defaults for addresses without an owner
	trusted                  bart.Lite
	clientIPHeader           string // canonical: config.HeaderXForwardedFor or config.HeaderForwarded

	cfg      config.Region
	files    []sourceFile // sources with their stamps from just before reading
	loadedAt time.Time
	loadTime time.Duration
}

// sourceFile is one database of the table and the file state it was read in.
type sourceFile struct {
	label  string // path as configured: names the source in answers and errors
	path   string // resolved path
	format string
	stamp  fileStamp
}

// fileStamp identifies a version of a file for the watcher.
type fileStamp struct {
	modTimeNanos int64
	size         int64
	err          string // stat error, "" when the file exists
}

func statFile(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{err: err.Error()}
	}
	return fileStamp{modTimeNanos: fi.ModTime().UnixNano(), size: fi.Size()}
}

// assignment is where an ASN's database ranges go.
type assignment struct {
	region                   string
	isp                      string // "" keeps the database's AS name
	subnetBits4, subnetBits6 uint8
}

// asnAssignments are the assignments of one ASN: a default (no within) and
// any number of within-restricted ones.
type asnAssignments struct {
	def    *assignment
	within bart.Table[int] // within prefix -> index into list
	list   []assignment
	prefix []netip.Prefix // within prefix of list[i]
}

// builder assembles a table. Not safe for concurrent use.
type builder struct {
	t        *table
	ownerIdx map[owner]uint32
	scratch  []netip.Prefix
}

// build reads every source of cfg and returns the finished table, or every
// problem found (config errors with their paths, file:line for malformed
// lines). Relative source paths are resolved against baseDir.
func build(cfg config.Region, baseDir string) (*table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	t := &table{
		name:        cfg.Name,
		subnetBits4: uint8(cfg.SubnetBitsV4),
		subnetBits6: uint8(cfg.SubnetBitsV6),
		cfg:         cloneRegion(cfg),
	}
	if strings.EqualFold(cfg.ClientIPHeader, config.HeaderForwarded) {
		t.clientIPHeader = config.HeaderForwarded
	} else {
		t.clientIPHeader = config.HeaderXForwardedFor
	}
	for _, s := range cfg.TrustedProxies {
		s = strings.TrimSpace(s)
		if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			t.trusted.Insert(netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		t.trusted.Insert(netip.MustParsePrefix(s)) // validated above
	}

	b := &builder{t: t, ownerIdx: map[owner]uint32{}}
	var errs []error
	for i, src := range cfg.Sources {
		f := sourceFile{label: src.Path, path: src.ResolvedPath(baseDir), format: src.ResolvedFormat()}
		f.stamp = statFile(f.path)
		t.files = append(t.files, f)
		if err := b.addSource(i, f); err != nil {
			errs = append(errs, fmt.Errorf("region.sources[%d]: %w", i, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := b.assignASNs(cfg); err != nil {
		return nil, err
	}
	if err := b.addConfigPrefixes(cfg); err != nil {
		return nil, err
	}
	t.loadedAt = time.Now()
	t.loadTime = t.loadedAt.Sub(start)
	return t, nil
}

// ownerOf interns o and returns its index.
func (b *builder) ownerOf(o owner) (uint32, error) {
	if i, ok := b.ownerIdx[o]; ok {
		return i, nil
	}
	if len(b.t.owners) >= maxOwners {
		return 0, fmt.Errorf("more than %d distinct region/ISP/ASN combinations", maxOwners)
	}
	i := uint32(len(b.t.owners))
	b.t.owners = append(b.t.owners, o)
	b.ownerIdx[o] = i
	return i, nil
}

// insert adds pfx for owner idx at the given layer. Entries of earlier
// layers inside pfx are removed first: a later layer answers for every
// address it covers, even where an earlier layer was more specific.
// Within one layer the most specific prefix wins, and an equal prefix
// replaces the earlier one.
func (b *builder) insert(pfx netip.Prefix, idx uint32, layer int) {
	tbl := &b.t.prefixes
	if layer > 0 {
		del := b.scratch[:0]
		for q, v := range tbl.Subnets(pfx) {
			if b.t.owners[v>>8].layer < layer {
				del = append(del, q)
			}
		}
		for _, q := range del {
			tbl.Delete(q)
		}
		b.scratch = del[:0]
	}
	tbl.Insert(pfx, idx<<8|uint32(pfx.Bits()))
}

// addSource reads one database file into the table at layer i.
func (b *builder) addSource(i int, f sourceFile) error {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("reading %s database: %w", f.format, err)
	}
	base := owner{source: f.label, layer: i, subnetBits4: b.t.subnetBits4, subnetBits6: b.t.subnetBits6}
	// Owners by ASN: hashing a uint32 is much cheaper than hashing the
	// owner's strings, and an AS almost always has one name per file.
	type cached struct {
		name string
		idx  uint32
	}
	byASN := map[uint32]cached{}
	var addErr error
	miss := func(asn uint32, name string) (uint32, bool) {
		o := base
		o.asn, o.isp = asn, name
		idx, err := b.ownerOf(o)
		if err != nil {
			addErr = err
			return 0, false
		}
		byASN[asn] = cached{name, idx}
		return idx, true
	}
	var ranges []netip.Prefix
	switch f.format {
	case config.SourceMMDB:
		err = readMMDB(data, f.label, func(pfx netip.Prefix, asn uint32, name string) {
			if addErr != nil {
				return
			}
			c, ok := byASN[asn]
			idx := c.idx
			if !ok || c.name != name {
				if idx, ok = miss(asn, name); !ok {
					return
				}
			}
			b.insert(pfx, idx, i)
		})
	default:
		err = readTSV(bytes.NewReader(data), f.label, func(r dbRange, desc []byte) {
			if addErr != nil {
				return
			}
			c, ok := byASN[r.ASN]
			idx := c.idx
			// string(desc) in a comparison does not allocate: a repeated
			// AS costs no string.
			if !ok || c.name != string(desc) {
				if idx, ok = miss(r.ASN, string(desc)); !ok {
					return
				}
			}
			ranges = rangePrefixes(ranges[:0], r.From, r.To)
			for _, p := range ranges {
				b.insert(p, idx, i)
			}
		})
	}
	if err != nil {
		return err
	}
	return addErr
}

// assignASNs gives the database ranges of the configured ASNs their region.
// For a range of AS n, the most specific within prefix of n that contains
// the range decides; without one, n's default assignment (no within); a
// within prefix smaller than the range carves its own entry out of it.
func (b *builder) assignASNs(cfg config.Region) error {
	byASN := map[uint32]*asnAssignments{}
	for _, rd := range cfg.Regions {
		for _, a := range rd.ASNs {
			as := byASN[a.ASN]
			if as == nil {
				as = &asnAssignments{}
				byASN[a.ASN] = as
			}
			asg := assignment{
				region:      rd.Name,
				isp:         a.Name,
				subnetBits4: pick(a.SubnetBitsV4, cfg.SubnetBitsV4),
				subnetBits6: pick(a.SubnetBitsV6, cfg.SubnetBitsV6),
			}
			if asg.isp == "" {
				for _, isp := range rd.ISPs {
					if isp.ASN == a.ASN && isp.Name != "" {
						asg.isp = isp.Name
						break
					}
				}
			}
			if len(a.Within) == 0 {
				as.def = &asg
				continue
			}
			for _, w := range a.Within {
				pfx := netip.MustParsePrefix(strings.TrimSpace(w)) // validated
				as.within.Insert(pfx, len(as.list))
				as.list = append(as.list, asg)
				as.prefix = append(as.prefix, pfx)
			}
		}
	}
	if len(byASN) == 0 {
		return nil
	}
	type update struct {
		pfx netip.Prefix
		o   owner
	}
	var updates []update
	assigned := func(o owner, a *assignment) owner {
		o.region = a.region
		if a.isp != "" {
			o.isp = a.isp
		}
		o.subnetBits4, o.subnetBits6 = a.subnetBits4, a.subnetBits6
		return o
	}
	// Ranges contained in a within prefix, or covered by the default.
	for pfx, v := range b.t.prefixes.All() {
		o := b.t.owners[v>>8]
		as := byASN[o.asn]
		if as == nil {
			continue
		}
		a := as.def
		if _, i, ok := as.within.LookupPrefixLPM(pfx); ok {
			a = &as.list[i]
		}
		if a != nil {
			updates = append(updates, update{pfx, assigned(o, a)})
		}
	}
	// Within prefixes smaller than the range of their ASN that holds them.
	for asn, as := range byASN {
		for i, w := range as.prefix {
			q, v, ok := b.t.prefixes.LookupPrefixLPM(w)
			if !ok || q == w {
				continue
			}
			o := b.t.owners[v>>8]
			if o.asn != asn {
				continue
			}
			updates = append(updates, update{w, assigned(o, &as.list[i])})
		}
	}
	for _, u := range updates {
		idx, err := b.ownerOf(u.o)
		if err != nil {
			return err
		}
		b.t.prefixes.Insert(u.pfx, idx<<8|uint32(u.pfx.Bits()))
	}
	return nil
}

// addConfigPrefixes adds the ISPs' own prefixes as the last layer: they
// override every database for the addresses they cover.
func (b *builder) addConfigPrefixes(cfg config.Region) error {
	layer := len(cfg.Sources)
	for _, rd := range cfg.Regions {
		for _, isp := range rd.ISPs {
			o := owner{
				region:      rd.Name,
				isp:         isp.Name,
				asn:         isp.ASN,
				source:      "config",
				layer:       layer,
				subnetBits4: pick(isp.SubnetBitsV4, cfg.SubnetBitsV4),
				subnetBits6: pick(isp.SubnetBitsV6, cfg.SubnetBitsV6),
			}
			idx, err := b.ownerOf(o)
			if err != nil {
				return err
			}
			for _, s := range isp.Prefixes {
				b.insert(netip.MustParsePrefix(strings.TrimSpace(s)), idx, layer) // validated
			}
		}
	}
	return nil
}

func pick(v, def int) uint8 {
	if v != 0 {
		return uint8(v)
	}
	return uint8(def)
}

// cloneRegion deep-copies the slices of cfg so that a caller that reuses
// its config cannot change a published table's view of it.
func cloneRegion(c config.Region) config.Region {
	c.TrustedProxies = append([]string(nil), c.TrustedProxies...)
	c.Sources = append([]config.RegionSource(nil), c.Sources...)
	regions := make([]config.RegionDef, len(c.Regions))
	for i, rd := range c.Regions {
		isps := make([]config.ISPDef, len(rd.ISPs))
		for j, isp := range rd.ISPs {
			isp.Prefixes = append([]string(nil), isp.Prefixes...)
			isps[j] = isp
		}
		asns := make([]config.ASNDef, len(rd.ASNs))
		for j, a := range rd.ASNs {
			a.Within = append([]string(nil), a.Within...)
			asns[j] = a
		}
		rd.ISPs, rd.ASNs = isps, asns
		regions[i] = rd
	}
	c.Regions = regions
	return c
}
