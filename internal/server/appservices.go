package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/appservice"
)

// buildAppServices loads the application services' registration files
// (a bad one stops start-up, naming the file and field), makes sure each
// service's sender user exists (Synapse creates it too: the service acts
// as it without registering), and builds the transaction senders (room
// events; ephemeral data and the encryption extensions).
func (s *Server) buildAppServices(ctx context.Context, b *built) error {
	regs, err := appservice.Load(s.cfg.AppServices.Files)
	if err != nil {
		return fmt.Errorf("config: appservices.files: %w", err)
	}
	b.appservices = appservice.NewRegistry(s.cfg.ServerName, regs)
	b.asClient = appservice.NewClient()
	for _, reg := range regs {
		if err := b.acc.ValidateLocalpart(reg.SenderLocalpart); err != nil {
			return fmt.Errorf("config: appservices.files: appservice %s: sender_localpart: %w", reg.ID, err)
		}
		_, err := b.acc.User(ctx, reg.SenderLocalpart)
		if errors.Is(err, accounts.ErrNoSuchUser) {
			_, err = b.acc.CreateAccount(ctx, accounts.NewAccount{Localpart: reg.SenderLocalpart})
		}
		if err != nil {
			return fmt.Errorf("appservice %s: sender user: %w", reg.ID, err)
		}
	}
	s.asSender = appservice.NewSender(appservice.SenderOptions{Registry: b.appservices, Rooms: s.engine, Store: s.db,
		Client: b.asClient, Bus: s.changes, Log: s.log})
	s.asEphemeral = appservice.NewEphemeral(appservice.EphemeralOptions{Registry: b.appservices, Store: s.db, Stream: s.engine.Stream(),
		Typing: s.typing, Presence: s.presence, Keys: s.keys, Client: b.asClient, Bus: s.changes, Log: s.log})
	return nil
}
