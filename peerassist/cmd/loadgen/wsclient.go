package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// wsConn is a minimal WebSocket client connection (RFC 6455): masked text
// frames out, frames in, pings answered. One goroutine uses it at a time;
// it is not safe for concurrent use.
type wsConn struct {
	nc   net.Conn
	br   *bufio.Reader
	out  []byte
	in   []byte
	mask uint32 // xorshift state for masking keys
}

var errClosed = errors.New("websocket closed by the server")

// dialWS connects to u from the local address src and performs the
// handshake.
func dialWS(ctx context.Context, u *url.URL, src netip.Addr, readBufBytes int) (*wsConn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	var keyBytes [16]byte
	_, _ = rand.Read(keyBytes[:])
	key := base64.StdEncoding.EncodeToString(keyBytes[:])
	path := u.RequestURI()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, u.Host, key); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(nc, readBufBytes)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		nc.Close()
		return nil, fmt.Errorf("handshake: status %s", resp.Status)
	}
	_ = nc.SetDeadline(time.Time{})
	return &wsConn{nc: nc, br: br, mask: binary.LittleEndian.Uint32(keyBytes[:]) | 1}, nil
}

func (c *wsConn) nextMask() uint32 {
	x := c.mask
	x ^= x << 13
	x ^= x >> 17
	x ^= x << 5
	c.mask = x
	return x
}

// writeFrame sends one final, masked frame.
func (c *wsConn) writeFrame(op byte, payload []byte) error {
	b := c.out[:0]
	b = append(b, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	m := c.nextMask()
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], m)
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	p := b[start:]
	k64 := uint64(m) | uint64(m)<<32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^k64)
	}
	for ; i < len(p); i++ {
		p[i] ^= key[i&3]
	}
	c.out = b
	_, err := c.nc.Write(b)
	return err
}

func (c *wsConn) writeText(payload []byte) error { return c.writeFrame(0x1, payload) }

// readMessage returns the next text or binary message (valid until the
// next call), answering pings on the way.
func (c *wsConn) readMessage() ([]byte, error) {
	c.in = c.in[:0]
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return nil, err
		}
		fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0F
		n := int64(hdr[1] & 0x7F)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return nil, err
			}
			n = int64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return nil, err
			}
			n = int64(binary.BigEndian.Uint64(b[:]))
		}
		if n > 16<<20 || n < 0 {
			return nil, fmt.Errorf("frame of %d bytes", n)
		}
		start := len(c.in)
		c.in = append(c.in, make([]byte, n)...)
		if _, err := io.ReadFull(c.br, c.in[start:]); err != nil {
			return nil, err
		}
		switch op {
		case 0x8:
			return nil, errClosed
		case 0x9:
			payload := append([]byte(nil), c.in[start:]...)
			c.in = c.in[:start]
			if err := c.writeFrame(0xA, payload); err != nil {
				return nil, err
			}
			continue
		case 0xA:
			c.in = c.in[:start]
			continue
		}
		if fin {
			return c.in, nil
		}
	}
}

func (c *wsConn) Close() error { return c.nc.Close() }
