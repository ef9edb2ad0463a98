package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// qmpClient speaks the QEMU Machine Protocol over a connected socket: one
// command at a time, events only logged.
type qmpClient struct {
	conn    net.Conn
	log     *slog.Logger
	mu      sync.Mutex // one command in flight
	nextID  int
	resp    chan qmpMsg
	greet   chan struct{}
	stop    chan struct{} // closed by close
	stopped chan struct{} // closed when the reader ends
	once    sync.Once
}

type qmpMsg struct {
	QMP    json.RawMessage `json:"QMP"`
	ID     int             `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// dialQMP waits for QEMU's greeting on conn and negotiates capabilities.
// exited is closed when QEMU exits.
func dialQMP(ctx context.Context, conn net.Conn, timeout time.Duration, exited <-chan struct{}, log *slog.Logger) (*qmpClient, error) {
	q := &qmpClient{
		conn:    conn,
		log:     log,
		resp:    make(chan qmpMsg, 1),
		greet:   make(chan struct{}),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go q.read()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-q.greet:
	case <-q.stopped:
		return nil, errors.New("connection closed before the greeting")
	case <-exited:
		return nil, ErrExited
	case <-ctx.Done():
		q.close()
		return nil, ctx.Err()
	case <-t.C:
		q.close()
		return nil, fmt.Errorf("no greeting after %v", timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := q.command(ctx, "qmp_capabilities", nil); err != nil {
		q.close()
		return nil, err
	}
	return q, nil
}

func (q *qmpClient) read() {
	defer close(q.stopped)
	dec := json.NewDecoder(q.conn)
	greeted := false
	for {
		var msg qmpMsg
		if err := dec.Decode(&msg); err != nil {
			return
		}
		switch {
		case msg.QMP != nil && !greeted:
			greeted = true
			close(q.greet)
		case msg.Event != "":
			q.log.Debug("qmp event", "event", msg.Event, "data", string(msg.Data))
		default:
			select {
			case q.resp <- msg:
			case <-q.stop:
				return
			}
		}
	}
}

// command executes a QMP command and returns its "return" value.
func (q *qmpClient) command(ctx context.Context, name string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.nextID++
	req := map[string]any{"execute": name, "id": q.nextID}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", name, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		q.conn.SetWriteDeadline(deadline)
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", name, err)
	}
	for {
		select {
		case msg := <-q.resp:
			if msg.ID != q.nextID {
				continue // the answer to a command that gave up waiting
			}
			if msg.Error != nil {
				return nil, fmt.Errorf("qmp %s: %s: %s", name, msg.Error.Class, msg.Error.Desc)
			}
			return msg.Return, nil
		case <-q.stopped:
			return nil, fmt.Errorf("qmp %s: connection closed", name)
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp %s: %w", name, ctx.Err())
		}
	}
}

func (q *qmpClient) close() {
	q.once.Do(func() {
		close(q.stop)
		q.conn.Close()
	})
}

// QMP executes a QEMU Machine Protocol command (see QEMU's QMP reference)
// with optional arguments (marshalled to JSON) and returns its result.
func (m *Machine) QMP(ctx context.Context, command string, args any) (json.RawMessage, error) {
	m.mu.Lock()
	p := m.p
	q := p.qmp
	m.mu.Unlock()
	select {
	case <-p.done:
		return nil, fmt.Errorf("qmp %s: %w", command, ErrExited)
	default:
	}
	if q == nil {
		return nil, fmt.Errorf("qmp %s: not connected", command)
	}
	return q.command(ctx, command, args)
}

// Reset presses the reset button: the guest reboots at once, without
// shutting down, in the same QEMU process.
func (m *Machine) Reset(ctx context.Context) error {
	_, err := m.QMP(ctx, "system_reset", nil)
	return err
}

// Powerdown presses the ACPI power button, which asks the guest to shut
// down; QEMU exits when it has (see Wait).
func (m *Machine) Powerdown(ctx context.Context) error {
	_, err := m.QMP(ctx, "system_powerdown", nil)
	return err
}
