"""The attention LSTM: cells, the RNN runner, encoder, attention, decoder, Seq2Seq."""
