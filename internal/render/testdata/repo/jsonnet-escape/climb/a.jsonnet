importstr '../../../../render.go'
