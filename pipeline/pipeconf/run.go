package pipeconf

import (
	"context"
	"errors"
	"sync"
	"time"
)

// life is a started Loaded.
type life struct {
	cancel   context.CancelFunc // ends the producer
	produced chan struct{}      // closed when the producer returned
	prodErr  error
	stop     sync.Once
	stopErr  error
	done     chan struct{} // closed when Wait's result is known
	err      error
}

// Start starts the pipeline (pipeline.Pipeline.Start) and then the input's
// producer, if the input has one. When ctx ends, or the producer fails,
// the Loaded shuts down as Shutdown does, bounded by the definition's
// shutdown_timeout (30s). Start may be called once.
func (l *Loaded) Start(ctx context.Context) error {
	if l.life != nil {
		return errors.New("pipeconf: already started")
	}
	if err := l.Pipeline.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	lf := &life{cancel: cancel, produced: make(chan struct{}), done: make(chan struct{})}
	l.life = lf
	if l.producer == nil {
		close(lf.produced)
	} else {
		go func() {
			defer close(lf.produced)
			if err := l.producer(pctx); err != nil && pctx.Err() == nil {
				lf.prodErr = err
			}
		}()
	}
	ended := make(chan struct{}) // the pipeline ended
	go func() {
		err := l.Pipeline.Wait()
		close(ended)
		cancel()
		<-lf.produced
		lf.err = errors.Join(lf.prodErr, err)
		close(lf.done)
	}()
	go func() {
		select {
		case <-ended: // a subscription failed, or Shutdown was called
			return
		case <-ctx.Done():
		case <-lf.produced:
			if lf.prodErr == nil {
				select { // a producer that ended by itself: run on
				case <-ctx.Done():
				case <-ended:
					return
				}
			}
		}
		drain := l.drain
		if drain <= 0 {
			drain = 30 * time.Second
		}
		sctx, cancel := context.WithTimeout(context.Background(), drain)
		defer cancel()
		_ = l.Shutdown(sctx)
	}()
	return nil
}

// Shutdown stops the input's producer and waits for it (its last calls
// are answered by the pipeline), then drains the pipeline
// (pipeline.Pipeline.Shutdown). It is safe to call more than once.
func (l *Loaded) Shutdown(ctx context.Context) error {
	lf := l.life
	if lf == nil {
		return l.Pipeline.Shutdown(ctx)
	}
	lf.stop.Do(func() {
		lf.cancel()
		select {
		case <-lf.produced:
		case <-ctx.Done():
		}
		lf.stopErr = l.Pipeline.Shutdown(ctx)
	})
	return lf.stopErr
}

// Wait waits until the started Loaded has ended (its context ended, Shutdown
// was called, a subscription or the producer failed) and returns why, as
// pipeline.Pipeline.Wait does, with the producer's error joined.
func (l *Loaded) Wait() error {
	if l.life == nil {
		return errors.New("pipeconf: Wait before a successful Start")
	}
	<-l.life.done
	return l.life.err
}

// Run is Start followed by Wait.
func (l *Loaded) Run(ctx context.Context) error {
	if err := l.Start(ctx); err != nil {
		return err
	}
	return l.Wait()
}
