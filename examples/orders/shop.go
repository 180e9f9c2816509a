package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/command"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/saga"
)

// Config configures a Shop.
type Config struct {
	// ShipWithin is how long the carrier has to confirm a shipment.
	ShipWithin time.Duration
	// CardLimit is the largest payment the payment service accepts, in
	// cents (default 50,000).
	CardLimit int64
	// NoCarrier is the address no carrier ever confirms (default
	// "Atlantis").
	NoCarrier string
	// Stock is what the shelves hold at start, by SKU (default 5 of book,
	// lamp and chair).
	Stock map[string]int
	// Log receives one line per thing a service does (nil: none).
	Log io.Writer
}

// Shop is the whole system in one process: the services, the saga, the
// read model and the bus between them.
type Shop struct {
	bus       *memory.Bus
	router    *eventkit.Router
	fulfil    *saga.Saga[Fulfilment]
	relay     *outbox.Relay
	client    *command.Client
	inventory *Inventory
	payments  *Payments
	orders    *ReadModel

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewShop wires a shop on a new in-process bus.
func NewShop(cfg Config) (*Shop, error) {
	if cfg.CardLimit == 0 {
		cfg.CardLimit = 50_000
	}
	if cfg.NoCarrier == "" {
		cfg.NoCarrier = "Atlantis"
	}
	if cfg.Stock == nil {
		cfg.Stock = map[string]int{"book": 5, "lamp": 5, "chair": 5}
	}
	quiet := slog.New(slog.DiscardHandler)
	s := &Shop{bus: memory.New(), orders: newReadModel()}
	s.router = eventkit.NewRouter(s.bus, eventkit.WithLogger(quiet))
	log := logTo(cfg.Log)
	svc := func(name string) service { return service{name: name, pub: s.bus, log: log} }
	s.inventory = &Inventory{service: svc(stockService), levels: maps.Clone(cfg.Stock), reserved: map[string]Stock{}}
	s.payments = &Payments{service: svc(paymentsService), limit: cfg.CardLimit, charged: map[string]int64{}}
	err := errors.Join(
		(&Orders{svc(ordersService)}).mount(s.router),
		s.inventory.mount(s.router),
		s.payments.mount(s.router),
		(&Shipping{service: svc(shippingService), noCarrier: cfg.NoCarrier}).mount(s.router),
	)
	if err != nil {
		return nil, s.close(err)
	}

	// The saga: its steps' messages go to the store's outbox, which the
	// relay publishes; Run (in Start) fires its deadlines.
	store := memory.NewSagaStore()
	if s.fulfil, err = newFulfilment(store, cfg.ShipWithin, saga.WithLogger(quiet), saga.WithPollInterval(50*time.Millisecond)); err != nil {
		return nil, s.close(err)
	}
	if s.relay, err = outbox.NewRelay(store.Outbox(), s.bus, outbox.WithPollInterval(10*time.Millisecond), outbox.WithLogger(quiet)); err != nil {
		return nil, s.close(err)
	}
	byOrder := []eventkit.RouteOption{eventkit.Concurrency(8), eventkit.OrderedByKey()}
	if err := s.router.Handle("*.events", s.fulfil.Handler(), append(byOrder, eventkit.RouteName("fulfilment saga"))...); err != nil {
		return nil, s.close(err)
	}
	// The read model: a projection of every event.
	if err := s.router.HandleFunc("*.events", s.orders.apply, append(byOrder, eventkit.RouteName("read model"))...); err != nil {
		return nil, s.close(err)
	}
	if s.client, err = command.NewClient(s.bus, s.bus, command.WithPrefix(ordersService+".commands"), command.WithTimeout(10*time.Second)); err != nil {
		return nil, s.close(err)
	}
	return s, nil
}

// Start subscribes every route and runs the relay and the saga's timers
// until Stop.
func (s *Shop) Start(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(ctx)
	if err := s.router.Start(ctx); err != nil {
		s.cancel()
		return s.close(err)
	}
	s.wg.Go(func() { _ = s.relay.Run(ctx) })
	s.wg.Go(func() { _ = s.fulfil.Run(ctx) })
	return nil
}

// Stop stops the shop and waits for its goroutines.
func (s *Shop) Stop() {
	s.cancel()
	_ = s.router.Wait()
	s.wg.Wait()
	_ = s.close(nil)
}

func (s *Shop) close(err error) error {
	if s.client != nil {
		err = errors.Join(err, s.client.Close())
	}
	return errors.Join(err, s.bus.Close())
}

// Place requests order.place and returns once the orders service accepted
// the order (an invalid order is a *command.Error).
func (s *Shop) Place(ctx context.Context, o Order) error {
	if _, err := command.Request[Accepted](ctx, s.client, cmdPlaceOrder, o); err != nil {
		return fmt.Errorf("placing %s: %w", o.ID, err)
	}
	return nil
}

// ReadModel returns the read model of the orders.
func (s *Shop) ReadModel() *ReadModel { return s.orders }

// Inventory returns the stock service.
func (s *Shop) Inventory() *Inventory { return s.inventory }

// Payments returns the payment service.
func (s *Shop) Payments() *Payments { return s.payments }

// Saga returns the fulfilment saga, to inspect its instances.
func (s *Shop) Saga() *saga.Saga[Fulfilment] { return s.fulfil }

// logTo returns a logger of one line per call to w (nil: none).
func logTo(w io.Writer) func(format string, args ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		if w == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "  "+format+"\n", args...)
	}
}
