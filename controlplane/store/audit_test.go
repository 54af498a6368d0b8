package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tollgate/tollgate/ids"
)

// TestAuditEventsInCommitOrder writes many events within one second, some
// several to a unit of work, and pages through them: the order is exactly
// the commit order (revision), newest first, with no event lost or repeated
// at page boundaries.
func TestAuditEventsInCommitOrder(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		bot, err := s.CreateBotUser(ctx, f.actor, f.account.ID, BotUserCreate{Name: "ci", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, _, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: bot.ID}); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 7; i++ {
			if err := s.RecordEvent(ctx, f.actor, f.account.ID, fmt.Sprintf("step_%d.v0", i), bot.ID, map[string]any{"i": i}); err != nil {
				t.Fatal(err)
			}
		}
		// One unit of work with four events: three keys and the bot.
		if err := s.DeleteBotUser(ctx, f.actor, f.account.ID, bot.ID); err != nil {
			t.Fatal(err)
		}
		all, more, err := s.ListAuditEvents(ctx, f.account.ID, Page{})
		if err != nil || more {
			t.Fatal(err, more)
		}
		for i := 1; i < len(all); i++ {
			if all[i].Revision > all[i-1].Revision || (all[i].Revision == all[i-1].Revision && all[i].ID >= all[i-1].ID) {
				t.Fatalf("events %d and %d out of order: %+v, %+v", i-1, i, all[i-1], all[i])
			}
		}
		if last := all[4]; last.Type != "step_6.v0" {
			t.Fatalf("the fifth newest event is %s, want step_6.v0 (after the deletion's four)", last.Type)
		}
		for i := 0; i < 7; i++ {
			if got, want := all[4+i].Type, fmt.Sprintf("step_%d.v0", 6-i); got != want {
				t.Fatalf("event %d is %s, want %s", 4+i, got, want)
			}
		}
		for _, size := range []int{1, 2, 3, 5} {
			var paged []AuditEvent
			p := Page{Limit: size}
			for {
				evs, more, err := s.ListAuditEvents(ctx, f.account.ID, p)
				if err != nil {
					t.Fatal(err)
				}
				paged = append(paged, evs...)
				if !more {
					break
				}
				p.BeforeID = evs[len(evs)-1].ID
			}
			if len(paged) != len(all) {
				t.Fatalf("page size %d: %d events, want %d", size, len(paged), len(all))
			}
			for i := range all {
				if paged[i].ID != all[i].ID {
					t.Fatalf("page size %d: event %d differs", size, i)
				}
			}
		}
		// A cursor from elsewhere gives nothing rather than everything.
		if evs, _, err := s.ListAuditEvents(ctx, f.account.ID, Page{BeforeID: ids.New(ids.PrefixAuditEvent)}); err != nil || len(evs) != 0 {
			t.Fatalf("unknown cursor: %d events, %v", len(evs), err)
		}

		got, err := s.GetAuditEvent(ctx, f.account.ID, all[5].ID)
		if err != nil || got.Type != all[5].Type || string(got.Payload) != `{"i":5}` || got.ActorID != f.admin.ID {
			t.Fatalf("GetAuditEvent = %+v, %v", got, err)
		}
		if _, err := s.GetAuditEvent(ctx, "acct_other", all[5].ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another account's event: %v", err)
		}
		before := rev(t, s)
		if err := s.RecordEvent(ctx, f.actor, f.account.ID, "", "", nil); err == nil || rev(t, s) != before {
			t.Fatalf("an event without a type: %v", err)
		}
	})
}
