package store

// SetNotesPageMin sets how few rows PushNotifications reads at a time,
// so that a test crosses page boundaries inside overlapping rows; it
// returns the function that restores it.
func SetNotesPageMin(n int) (restore func()) {
	old := notesPageMin
	notesPageMin = n
	return func() { notesPageMin = old }
}
