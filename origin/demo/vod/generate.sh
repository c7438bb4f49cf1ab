#!/usr/bin/env bash
# Generates the demo origin's sample HLS VOD (origin/demo/vod/sample/) from
# ffmpeg's test sources: 40 s of testsrc2 with a running clock and frame
# counter burnt in, and a 440 Hz tone with a 1 kHz beep every second, as
# two renditions of H.264 (main profile) + AAC-LC in fMP4/CMAF segments of
# 4 s. The output is committed and embedded by the demo origin (go:embed);
# run this only to change the sample. Needs Debian's ffmpeg (libx264,
# drawtext) and the DejaVu fonts.
#
# Why H.264/AAC: Debian's chromium reports MediaSource support for
# video/mp4 "avc1.4D401F, mp4a.40.2" (checked with isTypeSupported in
# headless chromium 156), and every other browser and TV plays it too.
#
# Usage: origin/demo/vod/generate.sh [output dir]
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-sample}
duration=40   # seconds
fps=25
seg=4         # seconds per segment; keyframe every 2 s
font=/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf
[ -r "$font" ] || { echo "missing font $font (apt-get install fonts-dejavu-core)" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"

# The clock and frame counter make it obvious that playback advances and
# which rendition is on screen.
label() {
  echo "drawtext=fontfile=$font:fontsize=$2:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6:x=(w-tw)/2:y=h*0.62:text='$1  %{pts\\:hms}  frame %{frame_num}'"
}

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=$fps:duration=$duration" \
  -f lavfi -i "sine=frequency=440:beep_factor=2:sample_rate=48000:duration=$duration" \
  -filter_complex "[0:v]split=2[a][b];[a]$(label 360p 26)[v360];[b]scale=320:180,$(label 180p 13)[v180];[1:a]asplit=2[a0][a1]" \
  -map "[v360]" -map "[v180]" -map "[a0]" -map "[a1]" \
  -c:v libx264 -profile:v main -level:v 3.1 -preset slow -tune animation -pix_fmt yuv420p \
  -x264-params "threads=1:keyint=$((fps * 2)):min-keyint=$((fps * 2)):scenecut=0" \
  -b:v:0 350k -maxrate:v:0 450k -bufsize:v:0 900k \
  -b:v:1 120k -maxrate:v:1 160k -bufsize:v:1 320k \
  -c:a aac -b:a 48k -ac 2 \
  -fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1 \
  -f hls -hls_time "$seg" -hls_playlist_type vod -hls_segment_type fmp4 \
  -hls_flags independent_segments \
  -hls_fmp4_init_filename init.mp4 \
  -master_pl_name master.m3u8 \
  -var_stream_map "v:0,a:0,name:360p v:1,a:1,name:180p" \
  -hls_segment_filename "$out/%v/seg_%03d.m4s" \
  "$out/%v/index.m3u8"

du -sh "$out"
find "$out" -type f | sort
