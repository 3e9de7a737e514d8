#include "pipeline/event_consumer.h"

#include <algorithm>

namespace filesync::pipeline {

EventConsumer::EventConsumer(EventProducer& producer, EventProcessor& processor, int workers,
                             BatchLimits limits)
    : producer_(producer), processor_(processor), workers_(std::max(1, workers)), limits_(limits) {}

EventConsumer::~EventConsumer() { Join(); }

void EventConsumer::Start() {
  for (int i = 0; i < workers_; ++i) threads_.emplace_back([this] { Run(); });
}

void EventConsumer::Join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void EventConsumer::Run() {
  for (;;) {
    std::vector<Event> batch = producer_.Pop(limits_);
    if (batch.empty()) return;
    processor_.Process(batch);
    producer_.Done(batch);
  }
}

}  // namespace filesync::pipeline
