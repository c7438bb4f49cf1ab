package region

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gaissmai/bart"

	"github.com/peerassist/edgebox/config"
)

// answer is what a table prefix answers: everything Locate returns except
// the prefix and the subnet, which depend on the address. All the prefixes
// that give the same answer (typically the ranges of one AS in one file)
// share one answer, so the prefix table itself holds only a small ref.
type answer struct {
	isp    string // ISP name ("" unknown)
	asn    uint32
	region uint16 // index into table.regions; 0 is "no region"
	// layer is the precedence of the source and indexes table.sources:
	// 0..len(Sources)-1 for the databases in order, len(Sources) for
	// config prefixes.
	layer                    uint8
	subnetBits4, subnetBits6 uint8
}

// ref is the value the prefix table stores: the index of the prefix's
// answer in table.answers (upper 24 bits) and the prefix length (lower 8
// bits: bart's Lookup does not return the prefix). Four bytes without a
// pointer keep the trie about half the size of one that holds the answers
// themselves, so more of it stays in the CPU caches, and the garbage
// collector need not scan it.
type ref uint32

const (
	refBits    = 8
	maxAnswers = 1 << (32 - refBits)
)

// answerLimit is maxAnswers; a test lowers it.
var answerLimit = maxAnswers

func makeRef(answer uint32, bits int) ref { return ref(answer<<refBits | uint32(bits)) }

func (r ref) answer() uint32 { return uint32(r >> refBits) }
func (r ref) bits() int      { return int(r & (1<<refBits - 1)) }

// ErrTooManyAnswers: the sources give more distinct (ISP, ASN, region,
// source) answers than a table can index. Real databases have about 100k.
var ErrTooManyAnswers = fmt.Errorf("more than %d distinct ISP answers", maxAnswers)

// maxRegions keeps answer.region in 16 bits (config.MaxRegionSources keeps
// answer.layer in 8).
const maxRegions = 1<<16 - 1

// table is one immutable snapshot of everything a lookup needs. It is built
// completely, then published with an atomic pointer swap, so a lookup sees
// either the old or the new table, never a mix. Safe for concurrent reads.
type table struct {
	// prefixes is a bart.Fast: its per-node child index costs memory
	// (36 MB for a full table) but makes lookups faster than bart.Table's.
	prefixes bart.Fast[ref]
	// idx4 answers most IPv4 lookups in one load (see index4); nil for a
	// table of fewer than index4MinPrefixes IPv4 prefixes.
	idx4     *index4
	answers  []answer
	unlisted answer   // for addresses in no prefix: the default subnet sizes
	regions  []string // regions[0] == ""
	sources  []string // label of each layer: database paths, then "config"

	name                     string // region this box serves, "" all
	subnetBits4, subnetBits6 uint8  // defaults for addresses in no prefix
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
	t         *table
	regionIdx map[string]uint16
	answerIdx map[answer]uint32 // index of each answer in t.answers
	err       error             // ErrTooManyAnswers, once
	scratch   []netip.Prefix
}

// intern returns the index of a in the table's answers, adding it if new.
func (b *builder) intern(a answer) uint32 {
	if i, ok := b.answerIdx[a]; ok {
		return i
	}
	if len(b.t.answers) >= answerLimit {
		b.err = ErrTooManyAnswers
		return 0
	}
	i := uint32(len(b.t.answers))
	b.answerIdx[a] = i
	b.t.answers = append(b.t.answers, a)
	return i
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
	t.unlisted = answer{subnetBits4: t.subnetBits4, subnetBits6: t.subnetBits6}
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

	if len(cfg.Regions) > maxRegions {
		return nil, fmt.Errorf("region.regions: %d regions, at most %d are supported", len(cfg.Regions), maxRegions)
	}
	b := &builder{t: t, regionIdx: map[string]uint16{}, answerIdx: map[answer]uint32{}}
	t.regions = append(t.regions, "")
	for _, rd := range cfg.Regions {
		b.regionIdx[rd.Name] = uint16(len(t.regions))
		t.regions = append(t.regions, rd.Name)
	}
	for _, src := range cfg.Sources {
		t.sources = append(t.sources, src.Path)
	}
	t.sources = append(t.sources, "config")
	var errs []error
	for i, src := range cfg.Sources {
		f := sourceFile{label: src.Path, path: src.ResolvedPath(baseDir), format: src.ResolvedFormat()}
		f.stamp = statFile(f.path)
		t.files = append(t.files, f)
		if err := b.addSource(i, f); err != nil {
			errs = append(errs, fmt.Errorf("region.sources[%d]: %w", i, err))
		}
		if b.err != nil {
			errs = append(errs, fmt.Errorf("region.sources[%d]: %s: %w", i, f.label, b.err))
			break
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
	if b.err != nil {
		return nil, fmt.Errorf("region: %w", b.err)
	}
	if t.prefixes.Size4() >= index4MinPrefixes {
		t.idx4 = newIndex4(&t.prefixes)
	}
	t.loadedAt = time.Now()
	t.loadTime = t.loadedAt.Sub(start)
	return t, nil
}

// insert adds pfx with the answer at index id (from intern). Prefixes of
// earlier layers inside pfx are removed first: a later layer answers for
// every address it covers, even where an earlier layer was more specific.
// Within one layer the most specific prefix wins, and an equal prefix
// replaces the earlier one.
func (b *builder) insert(pfx netip.Prefix, id uint32) {
	if b.err != nil {
		return // the build fails: id may be no answer's
	}
	tbl := &b.t.prefixes
	if layer := b.t.answers[id].layer; layer > 0 {
		del := b.scratch[:0]
		for q, r := range tbl.Subnets(pfx) {
			if b.t.answers[r.answer()].layer < layer {
				del = append(del, q)
			}
		}
		for _, q := range del {
			tbl.Delete(q)
		}
		b.scratch = del[:0]
	}
	tbl.Insert(pfx, makeRef(id, pfx.Bits()))
}

// addSource reads one database file into the table at layer i.
func (b *builder) addSource(i int, f sourceFile) error {
	base := answer{layer: uint8(i), subnetBits4: b.t.subnetBits4, subnetBits6: b.t.subnetBits6}
	// The answer of each AS in this file: an AS almost always has one name
	// per file, so this spares interning (hashing the name) per range.
	byASN := map[uint32]uint32{}
	newAnswer := func(asn uint32, name string) uint32 {
		a := base
		a.asn, a.isp = asn, name
		id := b.intern(a)
		byASN[asn] = id
		return id
	}
	var ranges []netip.Prefix
	switch f.format {
	case config.SourceMMDB:
		data, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("reading %s database: %w", f.format, err)
		}
		return readMMDB(data, f.label, func(pfx netip.Prefix, asn uint32, name string) {
			id, ok := byASN[asn]
			if !ok || b.t.answers[id].isp != name {
				id = newAnswer(asn, name)
			}
			b.insert(pfx, id)
		})
	default:
		// Streamed: a full iptoasn file need not sit in memory.
		file, err := os.Open(f.path)
		if err != nil {
			return fmt.Errorf("reading %s database: %w", f.format, err)
		}
		defer file.Close()
		return readTSV(file, f.label, func(r dbRange, desc []byte) {
			id, ok := byASN[r.ASN]
			if !ok || b.t.answers[id].isp != string(desc) { // no allocation
				id = newAnswer(r.ASN, string(desc))
			}
			ranges = rangePrefixes(ranges[:0], r.From, r.To)
			for _, p := range ranges {
				b.insert(p, id)
			}
		})
	}
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
		a   answer
	}
	var updates []update
	assigned := func(a answer, asg *assignment) answer {
		a.region = b.regionIdx[asg.region]
		if asg.isp != "" {
			a.isp = asg.isp
		}
		a.subnetBits4, a.subnetBits6 = asg.subnetBits4, asg.subnetBits6
		return a
	}
	// Ranges contained in a within prefix, or covered by the default.
	for pfx, r := range b.t.prefixes.All() {
		a := b.t.answers[r.answer()]
		as := byASN[a.asn]
		if as == nil {
			continue
		}
		asg := as.def
		if _, i, ok := as.within.LookupPrefixLPM(pfx); ok {
			asg = &as.list[i]
		}
		if asg != nil {
			updates = append(updates, update{pfx, assigned(a, asg)})
		}
	}
	// Within prefixes smaller than the range of their ASN that holds them.
	for asn, as := range byASN {
		for i, w := range as.prefix {
			q, r, ok := b.t.prefixes.LookupPrefixLPM(w)
			if !ok || q == w {
				continue
			}
			a := b.t.answers[r.answer()]
			if a.asn != asn {
				continue
			}
			updates = append(updates, update{w, assigned(a, &as.list[i])})
		}
	}
	for _, u := range updates {
		b.t.prefixes.Insert(u.pfx, makeRef(b.intern(u.a), u.pfx.Bits()))
	}
	return nil
}

// addConfigPrefixes adds the ISPs' own prefixes as the last layer: they
// override every database for the addresses they cover.
func (b *builder) addConfigPrefixes(cfg config.Region) error {
	layer := len(cfg.Sources)
	for _, rd := range cfg.Regions {
		for _, isp := range rd.ISPs {
			a := answer{
				region:      b.regionIdx[rd.Name],
				isp:         isp.Name,
				asn:         isp.ASN,
				layer:       uint8(layer),
				subnetBits4: pick(isp.SubnetBitsV4, cfg.SubnetBitsV4),
				subnetBits6: pick(isp.SubnetBitsV6, cfg.SubnetBitsV6),
			}
			id := b.intern(a)
			for _, s := range isp.Prefixes {
				b.insert(netip.MustParsePrefix(strings.TrimSpace(s)), id) // validated
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
