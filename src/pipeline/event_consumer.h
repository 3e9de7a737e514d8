// EventConsumer: the pool of `workers` threads that take events from the EventProducer on demand
// and hand each batch to the EventProcessor (the seed's ConsumerSupervisor spawning one
// EventProcessor per event; here a fixed pool, so the number of concurrent cloud operations is
// bounded).
//
// Lifecycle: Start() launches the threads; they run until the producer is closed and drained or
// cancelled; Join() waits for them. The destructor joins, so destroying a consumer never leaves a
// thread behind. Not copyable; Start/Join from one owning thread.
#pragma once

#include <thread>
#include <vector>

#include "pipeline/event_processor.h"
#include "pipeline/event_producer.h"

namespace filesync::pipeline {

class EventConsumer {
 public:
  EventConsumer(EventProducer& producer, EventProcessor& processor, int workers,
                BatchLimits limits);
  ~EventConsumer();
  EventConsumer(const EventConsumer&) = delete;
  EventConsumer& operator=(const EventConsumer&) = delete;

  void Start();
  void Join();

 private:
  void Run();

  EventProducer& producer_;
  EventProcessor& processor_;
  const int workers_;
  const BatchLimits limits_;
  std::vector<std::thread> threads_;
};

}  // namespace filesync::pipeline
