package store

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/ids"
)

// TestAuditEventsFiltered: ListAuditEventsWhere keeps the events of one
// principal, one kind of object and one time range, and pages within them.
func TestAuditEventsFiltered(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		s.now = func() time.Time { return clock }
		bot, err := s.CreateBotUser(ctx, f.actor, f.account.ID, BotUserCreate{Name: "ci", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		botActor := Actor{AccountID: f.account.ID, PrincipalID: bot.ID}
		var policies []string
		for i := 0; i < 3; i++ {
			clock = clock.Add(time.Hour)
			p, err := s.CreateIPPolicy(ctx, botActor, f.account.ID, IPPolicyCreate{Description: "p"})
			if err != nil {
				t.Fatal(err)
			}
			policies = append(policies, p.ID)
		}
		clock = clock.Add(time.Hour) // 16:00
		if _, _, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: f.admin.ID}); err != nil {
			t.Fatal(err)
		}
		list := func(fl AuditFilter, page Page) []AuditEvent {
			t.Helper()
			evs, _, err := s.ListAuditEventsWhere(ctx, f.account.ID, fl, page)
			if err != nil {
				t.Fatal(err)
			}
			return evs
		}
		if evs := list(AuditFilter{PrincipalID: bot.ID}, Page{}); len(evs) != 3 || evs[0].ObjectID != policies[2] {
			t.Fatalf("the bot's events: %+v", evs)
		}
		if evs := list(AuditFilter{ObjectPrefix: ids.PrefixIPPolicy}, Page{}); len(evs) != 3 {
			t.Fatalf("IP policy events: %d, want 3", len(evs))
		}
		if evs := list(AuditFilter{ObjectPrefix: ids.PrefixAPIKey}, Page{}); len(evs) != 1 || evs[0].ActorID != f.admin.ID {
			t.Fatalf("API key events: %+v", evs)
		}
		// 13:00 (the first policy) <= t < 15:00 (the third).
		since, until := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 15, 0, 0, 0, time.UTC)
		if evs := list(AuditFilter{Since: since, Until: until}, Page{}); len(evs) != 2 || evs[0].ObjectID != policies[1] || evs[1].ObjectID != policies[0] {
			t.Fatalf("13:00-15:00: %+v", evs)
		}
		// Pages of one within the filter.
		first, more, err := s.ListAuditEventsWhere(ctx, f.account.ID, AuditFilter{PrincipalID: bot.ID}, Page{Limit: 1})
		if err != nil || !more || len(first) != 1 {
			t.Fatal(err, more, len(first))
		}
		if evs := list(AuditFilter{PrincipalID: bot.ID}, Page{Limit: 1, BeforeID: first[0].ID}); len(evs) != 1 || evs[0].ObjectID != policies[1] {
			t.Fatalf("second page: %+v", evs)
		}
		if _, _, err := s.ListAuditEventsWhere(ctx, f.account.ID, AuditFilter{ObjectPrefix: "a'b"}, Page{}); err == nil {
			t.Fatal("a prefix that is not letters was accepted")
		}
	})
}
