package demo

import (
	"embed"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/valyala/fasthttp"
)

// The sample video, generated once by vod/generate.sh and committed.
//
//go:embed vod/sample
var vodFS embed.FS

// vodPrefix is where the sample is served; its files keep their paths
// below vod/ (vod/sample/master.m3u8 is /vod/sample/master.m3u8).
const vodPrefix = "/vod/"

// SampleMasterPath is the URL path of the sample's master playlist.
const SampleMasterPath = "/vod/sample/master.m3u8"

// vodFile is one embedded file with its precomputed headers.
type vodFile struct {
	data         []byte
	etag         string
	contentType  string
	cacheControl string
}

func loadVOD() map[string]*vodFile {
	files := map[string]*vodFile{}
	err := fs.WalkDir(vodFS, "vod", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := vodFS.ReadFile(p)
		if err != nil {
			return err
		}
		ct, cc := "application/octet-stream", "public, max-age=86400"
		switch path.Ext(p) {
		case ".m3u8":
			// VOD playlists do not change either, but a short lifetime lets
			// an operator replace the sample without waiting a day.
			ct, cc = "application/vnd.apple.mpegurl", "public, max-age=60"
		case ".mp4", ".m4s":
			ct = "video/mp4"
		case ".ts":
			ct = "video/mp2t"
		}
		files["/"+p] = &vodFile{
			data:         data,
			etag:         `"v-` + strconv.FormatUint(xxhash.Sum64(data), 16) + `"`,
			contentType:  ct,
			cacheControl: cc,
		}
		return nil
	})
	if err != nil {
		// The files are compiled in: failing to walk them is a build bug.
		panic("demo: reading embedded video: " + err.Error())
	}
	return files
}

// SampleFiles returns the URL paths of every file of the sample video,
// sorted; SampleFile returns one file's bytes. Tests use them to compare
// what an edge served with what the origin holds.
func (o *Origin) SampleFiles() []string {
	var out []string
	for p := range o.vod {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// SampleFile returns the bytes of the sample file at URL path p (not to be
// modified), or false.
func (o *Origin) SampleFile(p string) ([]byte, bool) {
	f, ok := o.vod[p]
	if !ok {
		return nil, false
	}
	return f.data, true
}

func (o *Origin) serveVOD(ctx *fasthttp.RequestCtx, p string) {
	f, ok := o.vod[p]
	if !ok || strings.Contains(p, "..") {
		o.fail(ctx, fasthttp.StatusNotFound, "no such file %q", p)
		return
	}
	k, ok := o.knobsOrFail(ctx)
	if !ok {
		return
	}
	o.serveEntity(ctx, k, entity{
		src:          bytesSource(f.data),
		size:         int64(len(f.data)),
		etag:         f.etag,
		lastModified: BaseLastModified,
		contentType:  f.contentType,
		cacheControl: f.cacheControl,
	})
}
