package main

import (
	"errors"
	"fmt"
)

// The shop's services and the messages they exchange. A command is sent to
// the one service that owns its type (on the topic "<service>.commands.<type>",
// see command.Topic); an event is published by its service on
// "<service>.events". Every message of an order carries the order id as its
// subject, its partition key and its correlationid.
const (
	ordersService   = "orders"
	stockService    = "stock"
	paymentsService = "payments"
	shippingService = "shipping"
)

// Command types.
const (
	cmdPlaceOrder    = "order.place"
	cmdReserveStock  = "stock.reserve"
	cmdReleaseStock  = "stock.release"
	cmdChargePayment = "payment.charge"
	cmdRefundPayment = "payment.refund"
	cmdShipOrder     = "shipment.ship"
)

// Event types, by the service that publishes them.
const (
	// orders: the order's life, published by the orders service and the saga.
	evOrderPlaced, evOrderCompleted, evOrderCancelled = "order.placed", "order.completed", "order.cancelled"
	// stock: the answers to stock.reserve and stock.release.
	evStockReserved, evStockRejected, evStockReleased = "stock.reserved", "stock.rejected", "stock.released"
	// payments: the answers to payment.charge and payment.refund.
	evPaymentCharged, evPaymentDeclined, evPaymentRefunded = "payment.charged", "payment.declined", "payment.refunded"
	// shipping: the carrier's confirmation.
	evOrderShipped = "order.shipped"
)

// Order is the data of the order.place command and of the order.placed
// event. Amounts are in cents.
type Order struct {
	ID       string `json:"id"`
	Customer string `json:"customer"`
	SKU      string `json:"sku"`
	Qty      int    `json:"qty"`
	Amount   int64  `json:"amount"`
	Address  string `json:"address"`
}

// Validate rejects an order before any handler sees it (command.Handle
// calls it).
func (o Order) Validate() error {
	switch {
	case o.ID == "" || o.Customer == "" || o.SKU == "" || o.Address == "":
		return errors.New("an order needs an id, a customer, a sku and an address")
	case o.Qty <= 0 || o.Amount <= 0:
		return fmt.Errorf("order %s: quantity and amount must be positive", o.ID)
	}
	return nil
}

// Accepted is the reply to order.place.
type Accepted struct {
	OrderID string `json:"orderId"`
}

// Stock is the data of stock.reserve and stock.release, and of the stock
// service's events.
type Stock struct {
	OrderID string `json:"orderId"`
	SKU     string `json:"sku"`
	Qty     int    `json:"qty"`
}

// Payment is the data of payment.charge and payment.refund, and of the
// payment service's events.
type Payment struct {
	OrderID  string `json:"orderId"`
	Customer string `json:"customer"`
	Amount   int64  `json:"amount"`
	Reason   string `json:"reason,omitempty"`
}

// Shipment is the data of shipment.ship and order.shipped.
type Shipment struct {
	OrderID string `json:"orderId"`
	Address string `json:"address"`
}

// Outcome is the data of order.completed and order.cancelled.
type Outcome struct {
	OrderID string `json:"orderId"`
	Reason  string `json:"reason,omitempty"`
}
