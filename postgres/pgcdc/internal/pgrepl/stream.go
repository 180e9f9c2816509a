package pgrepl

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Stream is a started replication stream (the CopyBoth sub-protocol). Recv
// is meant for one goroutine; SendStatus may be called from another one
// concurrently.
type Stream struct {
	conn net.Conn
	fe   *pgproto3.Frontend

	wmu  sync.Mutex // serialises writes
	wbuf []byte

	// The context Recv watches, and RecvView's messages (only the
	// receiving goroutine touches these).
	watched   context.Context
	stopWatch func() bool
	xlog      XLogData
	keepalive Keepalive

	closeOnce sync.Once
}

// StartReplication starts logical replication from slot at start (0 lets the
// server start at the slot's confirmed position) with the plugin arguments
// args (see PgoutputOptions.Args). The Conn cannot be used afterwards: it
// belongs to the returned Stream, whose Close closes it.
func (c *Conn) StartReplication(ctx context.Context, slot string, start LSN, args []string) (*Stream, error) {
	sql := fmt.Sprintf("START_REPLICATION SLOT %s LOGICAL %s", QuoteIdent(slot), start)
	if len(args) > 0 {
		sql += " (" + strings.Join(args, ", ") + ")"
	}
	h, err := c.pg.Hijack()
	if err != nil {
		return nil, fmt.Errorf("pgrepl: START_REPLICATION: %w", err)
	}
	s := &Stream{conn: h.Conn, fe: h.Frontend}
	stop := context.AfterFunc(ctx, func() { _ = h.Conn.SetDeadline(time.Now()) })
	defer stop()
	s.fe.Send(&pgproto3.Query{String: sql})
	if err := s.fe.Flush(); err != nil {
		s.conn.Close()
		return nil, fmt.Errorf("pgrepl: START_REPLICATION: %w", err)
	}
	var pgErr error
	for {
		msg, err := s.fe.Receive()
		if err != nil {
			s.conn.Close()
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("pgrepl: START_REPLICATION: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyBothResponse:
			if !stop() {
				s.conn.Close()
				return nil, fmt.Errorf("pgrepl: START_REPLICATION: %w", ctx.Err())
			}
			return s, nil
		case *pgproto3.ErrorResponse:
			pgErr = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			s.conn.Close()
			if pgErr == nil {
				pgErr = fmt.Errorf("unexpected ReadyForQuery")
			}
			return nil, fmt.Errorf("pgrepl: START_REPLICATION: %w", pgErr)
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			s.conn.Close()
			return nil, fmt.Errorf("pgrepl: START_REPLICATION: unexpected message %T", msg)
		}
	}
}

// XLogData is a chunk of WAL data: for logical replication, one message of
// the output plugin (see Parse for pgoutput).
type XLogData struct {
	WALStart   LSN       // WAL position of the start of the data
	ServerWAL  LSN       // current end of WAL on the server
	ServerTime time.Time // server's clock when sending
	Data       []byte    // owned by the receiver
}

// Keepalive is a primary keepalive message.
type Keepalive struct {
	ServerWAL      LSN       // current end of WAL on the server
	ServerTime     time.Time // server's clock when sending
	ReplyRequested bool      // the server asks for a status update now
}

// Recv returns the next message of the stream: *XLogData or *Keepalive. It
// returns ErrStreamEnded when the server ends the stream. When ctx ends the
// Stream is no longer usable (a partial message may have been consumed):
// close it.
func (s *Stream) Recv(ctx context.Context) (any, error) {
	b, err := s.recv(ctx)
	if err != nil {
		return nil, err
	}
	return ParseCopyData(b)
}

// RecvView is Recv without copies: the returned *XLogData or *Keepalive,
// and the XLogData's Data, belong to the Stream and are valid only until
// the next call of Recv or RecvView. It allocates nothing.
func (s *Stream) RecvView(ctx context.Context) (any, error) {
	b, err := s.recv(ctx)
	if err != nil {
		return nil, err
	}
	return parseCopyDataInto(b, &s.xlog, &s.keepalive)
}

// recv returns the payload of the next CopyData message, valid until the
// next call.
func (s *Stream) recv(ctx context.Context) ([]byte, error) {
	if ctx != s.watched {
		// One watcher per context, not per message: Recv is called in a
		// loop with the same context.
		if s.stopWatch != nil {
			s.stopWatch()
			s.stopWatch = nil
		}
		s.watched = ctx
		if ctx.Done() != nil {
			s.stopWatch = context.AfterFunc(ctx, func() { _ = s.conn.SetReadDeadline(time.Now()) })
		}
	}
	for {
		msg, err := s.fe.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("pgrepl: receive: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			return m.Data, nil
		case *pgproto3.CopyDone, *pgproto3.CommandComplete:
			// The server ends the stream (CopyDone; on shutdown a
			// walsender may send CommandComplete directly).
			return nil, ErrStreamEnded
		case *pgproto3.ErrorResponse:
			return nil, fmt.Errorf("pgrepl: receive: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			return nil, fmt.Errorf("pgrepl: receive: unexpected message %T", msg)
		}
	}
}

// ParseCopyData parses the payload of a CopyData message from the server:
// XLogData ('w') or a primary keepalive ('k'). XLogData.Data is a copy.
func ParseCopyData(b []byte) (any, error) {
	m, err := parseCopyDataInto(b, new(XLogData), new(Keepalive))
	if x, ok := m.(*XLogData); ok {
		x.Data = append([]byte(nil), x.Data...)
	}
	return m, err
}

// parseCopyDataInto parses b into x or k; x.Data shares b's memory.
func parseCopyDataInto(b []byte, x *XLogData, k *Keepalive) (any, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("pgrepl: empty CopyData")
	}
	switch b[0] {
	case 'w':
		if len(b) < 25 {
			return nil, fmt.Errorf("pgrepl: XLogData: %d bytes, want at least 25", len(b))
		}
		*x = XLogData{
			WALStart:   LSN(binary.BigEndian.Uint64(b[1:])),
			ServerWAL:  LSN(binary.BigEndian.Uint64(b[9:])),
			ServerTime: PgTime(int64(binary.BigEndian.Uint64(b[17:]))),
			Data:       b[25:],
		}
		return x, nil
	case 'k':
		if len(b) < 18 {
			return nil, fmt.Errorf("pgrepl: keepalive: %d bytes, want 18", len(b))
		}
		*k = Keepalive{
			ServerWAL:      LSN(binary.BigEndian.Uint64(b[1:])),
			ServerTime:     PgTime(int64(binary.BigEndian.Uint64(b[9:]))),
			ReplyRequested: b[17] != 0,
		}
		return k, nil
	}
	return nil, fmt.Errorf("pgrepl: unknown CopyData message %q", b[0])
}

// StandbyStatus is a standby status update: how far the client wrote,
// flushed (made durable: the slot's confirmed position) and applied.
type StandbyStatus struct {
	Write, Flush, Apply LSN
	ClientTime          time.Time // zero means now
	ReplyRequested      bool      // ask the server to answer with a keepalive
}

// EncodeStandbyStatus returns the CopyData payload ('r') of u.
func EncodeStandbyStatus(u StandbyStatus) []byte {
	t := u.ClientTime
	if t.IsZero() {
		t = time.Now()
	}
	b := make([]byte, 34)
	b[0] = 'r'
	binary.BigEndian.PutUint64(b[1:], uint64(u.Write))
	binary.BigEndian.PutUint64(b[9:], uint64(u.Flush))
	binary.BigEndian.PutUint64(b[17:], uint64(u.Apply))
	binary.BigEndian.PutUint64(b[25:], uint64(ToPgTime(t)))
	if u.ReplyRequested {
		b[33] = 1
	}
	return b
}

// SendStatus sends a standby status update. It is safe to call concurrently
// with Recv.
func (s *Stream) SendStatus(ctx context.Context, u StandbyStatus) error {
	payload := EncodeStandbyStatus(u)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var err error
	s.wbuf, err = (&pgproto3.CopyData{Data: payload}).Encode(s.wbuf[:0])
	if err != nil {
		return fmt.Errorf("pgrepl: encode status: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.conn.SetWriteDeadline(deadline)
	if _, err := s.conn.Write(s.wbuf); err != nil {
		return fmt.Errorf("pgrepl: send status: %w", err)
	}
	return nil
}

// Close ends the stream by closing the connection (the server keeps the
// slot at the last flushed position reported).
func (s *Stream) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.conn.Close() })
	return err
}
